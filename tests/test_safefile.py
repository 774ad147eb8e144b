"""Reading repository files: regular files only, bounded, never blocking."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from finecode_er.safefile import NotReadable, read_regular, stream_regular


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b"[tool.finecode]\n")
    assert read_regular(path) == b"[tool.finecode]\n"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    os.mkfifo(path)
    with pytest.raises(NotReadable, match="FIFO"):
        read_regular(path)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_symlink_to_a_device_is_refused(tmp_path: Path, device: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.symlink_to(device)
    with pytest.raises(NotReadable, match="character device"):
        read_regular(path)
    with pytest.raises(NotReadable, match="character device"):
        stream_regular(path, lambda _chunk: None)


def test_a_directory_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotReadable, match="directory"):
        read_regular(tmp_path)
    with pytest.raises(NotReadable, match="cannot read"):
        read_regular(tmp_path / "missing.toml")


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b"#" * 101)
    assert read_regular(path, limit=101) == b"#" * 101
    with pytest.raises(NotReadable, match="larger than"):
        read_regular(path, limit=100)


def test_streaming_has_no_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "python"
    data = os.urandom(3 * (1 << 20) + 5)
    path.write_bytes(data)
    digest = hashlib.sha256()
    assert stream_regular(path, digest.update) == len(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
