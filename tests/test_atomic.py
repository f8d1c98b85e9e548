"""``storage.atomic_file``: the one atomic-write helper (report files, encoded clips, evaluation cache,
shard durations): a reader sees the old file or the whole new one, and nothing is left behind."""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_ltx.storage import atomic_file, file_mode, write_atomic_bytes


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_writes_whole_file_with_the_ordinary_mode(tmp_path: Path) -> None:
    dest = tmp_path / "a.json"
    dest.write_text("old")
    with atomic_file(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.json.") and tmp.name.endswith(".part")
        tmp.write_text("new")
        assert dest.read_text() == "old"  # nothing visible until the block ends
    assert dest.read_text() == "new" and _mode(dest) == file_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_private_mode_keeps_0600(tmp_path: Path) -> None:
    write_atomic_bytes(tmp_path / "k", b"x", mode="private")
    assert _mode(tmp_path / "k") == 0o600


def test_an_error_in_the_block_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_file(dest) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("encoder died")
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_a_failed_rename_propagates_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(a, b):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        write_atomic_bytes(tmp_path / "r.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_rename_happens_under_the_lock_and_after_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])

    @contextmanager
    def lock():
        events.append("lock")
        yield
        events.append("unlock")

    with atomic_file(tmp_path / "e", fsync=True, rename_lock=lock()) as tmp:
        tmp.write_bytes(b"payload")
    assert events == ["fsync", "lock", "replace", "unlock"]
    assert (tmp_path / "e").read_bytes() == b"payload"
