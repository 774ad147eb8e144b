"""`listings.Listings`: a directory's listing reused while its stat is unchanged. Walks that
reuse listings (the cache's and trust's `walk`, discovery's `_candidate_dirs`) must see every
change a fresh walk sees."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm import listings
from finecode_wm.listings import Listings
from finecode_wm.trust import walk
from finecode_wm.workspace import _candidate_dirs

pytestmark = pytest.mark.timeout(120)

OLD = 1_600_000_000  # a time long past: listings of directories this old are kept
NAMES = ["a", "b", "pyproject.toml"]
PLACES = ["", "a", "b", "a/a", "a/b", "b/a"]
OPS = st.lists(st.tuples(st.sampled_from(["file", "dir", "remove", "rename", "link", "relink"]),
                         st.sampled_from(PLACES), st.sampled_from(NAMES)), max_size=12)


def _apply(root: Path, op: str, place: str, name: str) -> None:
    target = root / place / name
    if not target.parent.is_dir() or target.parent.is_symlink():
        return
    if op in ("remove", "rename", "relink") and (target.exists() or target.is_symlink()):
        if target.is_dir() and not target.is_symlink():
            if op == "rename":
                os.rename(target, target.with_name(target.name + "-moved"))
                return
            shutil.rmtree(target)
        else:
            target.unlink()
        if op == "relink":
            target.symlink_to(root / "b")
        return
    if target.exists() or target.is_symlink():
        return
    if op == "file":
        target.write_text("x")
    elif op == "dir":
        target.mkdir()
    elif op == "link":
        target.symlink_to(root / "a")


def _age(root: Path, step: int) -> None:
    """Every directory the last change touched (its mtime is recent) gets an old mtime of its
    own: unique per step, so a changed directory never keeps the stat a listing was kept by
    (the clock's granularity is `RACY_NS`'s business), while untouched ones keep theirs."""
    for current, dirs, _files in os.walk(root):
        for path in [current, *(os.path.join(current, d) for d in dirs)]:
            if not os.path.islink(path) and os.stat(path).st_mtime > OLD + 10**6:
                os.utime(path, (OLD + step, OLD + step))


def _files(root: Path, kept: Listings | None) -> list[tuple[str, str]]:
    return list(walk(root, lambda _name: True, lambda _path: False, kept))


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_walks_that_keep_listings_see_what_fresh_walks_see(
        ops: list[tuple[str, str, str]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="fc-listings-"))
    original = listings.RACY_NS
    listings.RACY_NS = 0  # keep every listing: `_age` makes each change visible in the stat
    try:
        (root / "a" / "b").mkdir(parents=True)
        (root / "b").mkdir()
        (root / "a" / "pyproject.toml").write_text("")
        _age(root, 0)
        kept_walk, kept_discovery = Listings(), Listings()
        for step, op in enumerate(ops, 1):
            assert _files(root, kept_walk) == _files(root, None)
            assert _candidate_dirs(root, kept_discovery) == _candidate_dirs(root, Listings())
            _apply(root, *op)
            _age(root, step)
        assert _files(root, kept_walk) == _files(root, None)
        assert _candidate_dirs(root, kept_discovery) == _candidate_dirs(root, Listings())
    finally:
        listings.RACY_NS = original
        shutil.rmtree(root, ignore_errors=True)


def test_a_listing_is_reused_only_while_the_directory_is_unchanged(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setattr(listings, "RACY_NS", 0)  # its ctime is now: keep it all the same
    (tmp_path / "one").write_text("")
    os.utime(tmp_path, (OLD, OLD))
    kept = Listings()
    first = kept.entries(str(tmp_path), os.stat(tmp_path))
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", None)  # a second read would fail
    assert kept.entries(str(tmp_path), os.stat(tmp_path)) is first
    monkeypatch.setattr(os, "scandir", real_scandir)
    (tmp_path / "two").write_text("")
    assert [name for name, _ in kept.entries(str(tmp_path), os.stat(tmp_path))] == \
        ["one", "two"]


def test_a_directory_changed_just_now_is_read_every_time(tmp_path: Path) -> None:
    """Its mtime may not move for a second change within the clock's granularity."""
    (tmp_path / "one").write_text("")
    kept = Listings()
    kept.entries(str(tmp_path), os.stat(tmp_path))
    stat = os.stat(tmp_path)
    (tmp_path / "two").write_text("")
    os.utime(tmp_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same mtime as before
    assert [n for n, _ in kept.entries(str(tmp_path), stat)] == ["one", "two"]
