"""The result store on disk: round trips, corrupt and half-written entries, the LRU size cap,
and concurrent writers in several processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from finecode_wm import cache_store
from finecode_wm.cache_store import (
    FORMAT,
    STALE_TEMP,
    TEMP_PREFIX,
    ResultStore,
    max_bytes_from_env,
)

KEY = "ab" * 32


def entry(result: object = None) -> dict[str, object]:
    return {"project": "/p", "action": "lint", "validity": {"files": {}, "dirs": {}},
            "result": {"diagnostics": []} if result is None else result}


def test_round_trip_through_memory_and_disk(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert store.get(KEY) is None
    assert store.put(KEY, entry({"count": 3}))
    assert store.get(KEY)["result"] == {"count": 3}  # type: ignore[index]
    fresh = ResultStore(tmp_path)  # another process: from disk
    got = fresh.get(KEY)
    assert got is not None and got["result"] == {"count": 3} and got["format"] == FORMAT
    assert [p.name for p in tmp_path.iterdir()] == [f"{KEY}.json"], "no temporary file left"


@pytest.mark.parametrize("content", [
    b'{"format": 1, "key": "' + KEY.encode() + b'", "validity": {}, "res',  # a truncated write
    b"",  # a crash after the rename, before the data reached the disk
    b"\xff\xfe not json",
    json.dumps({"format": 999, "key": KEY, "validity": {}, "result": 1}).encode(),
    json.dumps({"format": FORMAT, "key": "cd" * 32, "validity": {}, "result": 1}).encode(),
    json.dumps({"format": FORMAT, "key": KEY, "result": 1}).encode(),
    json.dumps([1, 2, 3]).encode(),
])
def test_a_corrupt_entry_is_absent_and_removed(tmp_path: Path, content: bytes) -> None:
    (tmp_path / f"{KEY}.json").write_bytes(content)
    assert ResultStore(tmp_path).get(KEY) is None
    assert not (tmp_path / f"{KEY}.json").exists()


@pytest.mark.timeout(10)
def test_an_entry_that_is_no_regular_file_is_absent_and_never_blocks(tmp_path: Path) -> None:
    """A FIFO under an entry's name (a cache restored from an archive, say) would block the
    open forever, and with it every later job of the cache's worker."""
    os.mkfifo(tmp_path / f"{KEY}.json")
    assert ResultStore(tmp_path).get(KEY) is None
    assert not (tmp_path / f"{KEY}.json").exists()
    (tmp_path / f"{KEY}.json").symlink_to("/dev/zero")
    assert ResultStore(tmp_path).get(KEY) is None


def test_an_entry_larger_than_any_of_ours_is_absent_and_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "MAX_ENTRY_BYTES", 100)
    (tmp_path / f"{KEY}.json").write_text(json.dumps({"format": FORMAT, "key": KEY,
                                                      "validity": {}, "result": "x" * 200}))
    assert ResultStore(tmp_path).get(KEY) is None
    assert not (tmp_path / f"{KEY}.json").exists()


def test_a_crashed_writers_temporary_file_is_never_read_and_pruned_when_stale(
        tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    stale = tmp_path / f"{TEMP_PREFIX}crashed"
    stale.write_bytes(b'{"format": 1, "key"')  # died mid-write: never renamed
    young = tmp_path / f"{TEMP_PREFIX}writing"
    young.write_bytes(b'{"format"')  # another process is writing it right now
    old = time.time() - STALE_TEMP - 10
    os.utime(stale, (old, old))
    assert store.get(KEY) is None
    store.prune()
    assert not stale.exists() and young.exists()


def test_a_result_json_cannot_carry_is_not_stored(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert not store.put(KEY, entry({"value": float("nan")}))
    assert not store.put(KEY, entry({"value": object()}))
    assert store.get(KEY) is None and list(tmp_path.iterdir()) == []


def test_the_size_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    payload = "x" * 1000
    size = len(json.dumps({**entry(payload), "format": FORMAT, "key": KEY},
                          separators=(",", ":")))
    store = ResultStore(tmp_path, max_bytes=size * 10, memory_entries=0)
    keys = [f"{i:064x}" for i in range(9)]
    for i, key in enumerate(keys):
        assert store.put(key, entry(payload))
        stamp = 1_000_000 + i  # written in this order, a second apart
        os.utime(store.path(key), (stamp, stamp))
    assert store.get(keys[0]) is not None  # used again: now the most recent
    for i in range(9, 12):  # over the cap: a prune down to 80 % of it
        store.put(f"{i:064x}", entry(payload))
    left = {p.stem for p in tmp_path.glob("*.json")}
    assert keys[0] in left, "the entry read last is kept"
    assert keys[1] not in left and keys[2] not in left, "the least recently used go first"
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= size * 10


def test_memory_keeps_a_bounded_number_of_entries(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, memory_entries=2)
    for i in range(4):
        store.put(f"{i:064x}", entry({"i": i}))
    for path in tmp_path.glob("*.json"):
        path.unlink()
    assert [store.get(f"{i:064x}") is not None for i in range(4)] == [False, False, True, True]


def test_max_bytes_from_the_environment() -> None:
    assert max_bytes_from_env({"FINECODE_CACHE_MAX_MB": "3"}) == 3 * 1024 * 1024
    default = max_bytes_from_env({})
    assert max_bytes_from_env({"FINECODE_CACHE_MAX_MB": "-1"}) == default
    assert max_bytes_from_env({"FINECODE_CACHE_MAX_MB": "lots"}) == default


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from finecode_wm.cache_store import ResultStore

    class Reader(ResultStore):
        # counts entries it found corrupt (a reader never prunes: only `get` discards)
        corrupt = 0

        def _discard(self, path):
            Reader.corrupt += 1
            super()._discard(path)

    store = ResultStore(Path(sys.argv[1]), max_bytes=int(sys.argv[3]))
    me = int(sys.argv[2])
    bad = 0
    for i in range(150):
        key = f"{i % 10:064x}"  # every writer writes the same ten keys
        store.put(key, {"validity": {}, "result": {"key": key, "blob": "y" * 3000}})
        fresh = Reader(store.directory)  # read as another process would
        got = fresh.get(f"{(i + me) % 10:064x}")
        if got is not None and got["result"]["key"] != f"{(i + me) % 10:064x}":
            bad += 1
    print(bad + Reader.corrupt)
""")


def test_concurrent_writers_in_several_processes_never_corrupt_an_entry(tmp_path: Path) -> None:
    """Four processes writing and reading the same keys at once, one of them pruning all the
    time (a cap of about six entries): a reader sees a whole entry or none, never a torn one,
    and nothing it reads is deleted as corrupt."""
    cap = 6 * 3100
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(i),
                               str(cap if i == 0 else 10**9)], stdout=subprocess.PIPE, text=True)
             for i in range(4)]
    outputs = [p.communicate(timeout=50)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [int(o) for o in outputs] == [0, 0, 0, 0]
    store = ResultStore(tmp_path)
    for path in tmp_path.glob("*.json"):
        got = store.get(path.stem)
        assert got is not None and got["result"]["key"] == path.stem, path
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*")), "no writer left a temporary file"
