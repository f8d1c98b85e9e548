"""Faults and tampering in the stores, as a CI runner meets them: a full baseline or cache volume (a real
size-limited tmpfs where this process may mount one, an injected ENOSPC otherwise), a read-only store, a
baseline folder hand-edited or half-deleted in a PR, a symlink out of the store, leftovers of a killed run.
Each ends with one line naming the store, the path and what was kept; nothing already stored changes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.baseline import store as store_mod
from pytest_ltx.baseline.record import ARRAYS_FILE, RECORD_FILE, THUMBNAILS_FILE, BaselineError, BaselineRecord
from pytest_ltx.baseline.store import BaselineStore, ChangeKind

ITEM = "specs/life/a"
MODEL = "testcard"


def _record(item: str = ITEM, version: float = 0.0) -> BaselineRecord:
    rng = np.random.default_rng(int(version * 1000))
    return BaselineRecord(
        item, MODEL,
        scalars={"motion.cuts": 0, "check.version": version},
        arrays={"structural.thumbnails": rng.integers(0, 255, (3, 32, 32), dtype=np.uint8),
                "clip_embeddings": rng.normal(size=(3, 64))},
        keyframe_frames=[0, 4, 8], fps=24.0,
        thumbnails=rng.integers(0, 255, (3, 72, 72, 3), dtype=np.uint8),
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name or ".del-" in p.name]


# ------------------------------------------------------------------------------------ a full volume


def _can_mount() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0 and bool(
        shutil.which("mount"))


@pytest.fixture
def small_volume(tmp_path: Path):
    """A 512 kB tmpfs (root on Linux) — a real full disk; skipped where mounting is not allowed (the
    injected-ENOSPC tests cover the same paths there)."""
    d = tmp_path / "vol"
    d.mkdir()
    if not _can_mount():
        pytest.skip("cannot mount a tmpfs here (needs root on Linux); injected ENOSPC tests cover this")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"mount refused: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _fill(volume: Path, leave_bytes: int) -> None:
    """Fill ``volume`` until ENOSPC, then free ``leave_bytes``."""
    filler = volume / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\1" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_bytes))


def _check_partial_flush(store: BaselineStore, before: dict[str, bytes], summary) -> None:
    """Every record either fully written (reads back equal) or FAILED with its previous version intact."""
    assert summary.failed, "the volume was meant to run out"
    for c in summary.failed:
        assert "no space left on the device" in c.notes[0]
        d = store.root / c.path
        if c.item_key == ITEM:  # had a version before: kept byte for byte
            now = {k: v for k, v in _snapshot(store.root).items() if k.startswith(c.path + "/")}
            assert now == {k: v for k, v in before.items() if k.startswith(c.path + "/")}
        else:
            assert not d.exists()
    for c in summary.created + summary.updated:
        rec = store.load(c.item_key, c.model_key)
        assert rec is not None and rec.scalars["check.version"] == 1.0
    assert not _leftovers(store.root)
    line = summary.failure_line()
    assert line.startswith(f"baseline store {store.root}: {len(summary.failed)} of 6 baseline(s) NOT written")
    assert "no space left on the device" in line and "kept its previous version" in line


def test_full_baseline_volume_writes_whole_records_or_none(small_volume: Path) -> None:
    store = BaselineStore(small_volume / "baselines")
    store.queue(_record(version=0.0))
    assert store.flush().created
    before = _snapshot(store.root)
    _fill(small_volume, 40_000)  # room for about one more record
    for item in [ITEM] + [f"specs/life/b{i}" for i in range(5)]:
        store.queue(_record(item, version=1.0))
    summary = store.flush()
    _check_partial_flush(store, before, summary)
    assert len(summary.created) + len(summary.updated) >= 1


def test_injected_enospc_mid_record_keeps_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.queue(_record(version=0.0))
    store.flush()
    before = _snapshot(store.root)
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd: int) -> None:  # the 5th file written onwards: the disk is full
        calls["n"] += 1
        if calls["n"] >= 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for item in [ITEM] + [f"specs/life/b{i}" for i in range(5)]:
        store.queue(_record(item, version=1.0))
    summary = store.flush()
    monkeypatch.setattr(os, "fsync", real)
    _check_partial_flush(store, before, summary)


def test_read_only_store_keeps_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.queue(_record(version=0.0))
    store.flush()
    before = _snapshot(store.root)

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(store.root))

    monkeypatch.setattr(store_mod, "_rename", ro)
    store.queue(_record(version=1.0))
    summary = store.flush()
    assert [c.kind for c in summary.changes] == [ChangeKind.FAILED]
    assert summary.failed[0].notes[0].startswith("read-only file system")
    assert _snapshot(store.root) == before and not _leftovers(store.root)
    assert "1 of 1 baseline(s) NOT written" in summary.failure_line()


def test_full_cache_volume_is_one_line_and_changes_no_entry(small_volume: Path, tmp_path: Path) -> None:
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.storage import StoreError
    from pytest_ltx.testcard import TestCardSpec, draw

    cache = RenderCache(small_volume / "cache")
    small = draw(TestCardSpec(width=64, height=64, frames=9, audio=None)).clip
    first = cache.put("a" * 64, small, {"n": 1})
    before = _snapshot(cache.root)
    _fill(small_volume, 8_000)
    big = draw(TestCardSpec(width=256, height=256, frames=49, audio=None, seed=3)).clip
    with pytest.raises(StoreError) as e:
        cache.put("b" * 64, big, {"n": 2})
    msg = str(e.value)
    assert msg.startswith("render cache: cannot write ") and "no space left on the device" in msg
    assert "the render was not cached and no cache entry was changed" in msg and "\n" not in msg
    (small_volume / "filler").unlink()
    after = _snapshot(cache.root)
    assert {k: v for k, v in after.items() if not k.startswith("tmp/")} == {
        k: v for k, v in before.items() if not k.startswith("tmp/")}
    assert not list((cache.root / "tmp").iterdir())
    assert cache.get("a" * 64).clip_path == first.clip_path and cache.get("b" * 64) is None


def test_cache_files_are_readable_by_other_users(tmp_path: Path) -> None:
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.testcard import TestCardSpec, draw

    old = os.umask(0o022)
    try:
        e = RenderCache(tmp_path / "c").put("c" * 64, draw(TestCardSpec(width=64, height=64, frames=9, audio=None)).clip, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(e.clip_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(e.meta_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(e.clip_path.parent.stat().st_mode) == 0o755


def test_baseline_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = BaselineStore(tmp_path / "b")
        store.queue(_record())
        store.flush()
    finally:
        os.umask(old)
    d = store.path_for(ITEM, MODEL)
    assert {stat.S_IMODE((d / n).stat().st_mode) for n in (RECORD_FILE, ARRAYS_FILE, THUMBNAILS_FILE)} == {0o644}


def test_stale_staging_and_part_files_are_swept_at_session_start(pytester: pytest.Pytester) -> None:
    cache, report = pytester.path / ".ltx-cache", pytester.path / "ltx-report" / "clips"
    old_stage = cache / "tmp" / "0123456789ab.xyz"
    new_stage = cache / "tmp" / "ba9876543210.abc"
    old_part = report / ".x.abc123.mp4.part"
    new_part = report / ".y.def456.mp4.part"
    for d in (old_stage, new_stage):
        d.mkdir(parents=True)
        (d / "clip.mp4").write_bytes(b"half")
    report.mkdir(parents=True)
    for f in (old_part, new_part):
        f.write_bytes(b"half")
    day_ago = time.time() - 86400
    for p in (old_stage, old_stage / "clip.mp4", old_part):
        os.utime(p, (day_ago, day_ago))
    pytester.runpytest_subprocess("--co", "-p", "no:cacheprovider")
    assert not old_stage.exists() and not old_part.exists()
    assert new_stage.exists() and new_part.exists()  # may belong to a concurrent session


# ------------------------------------------------------------------------------------------ tamper


def _rec_dir(store: BaselineStore) -> Path:
    return store.path_for(ITEM, MODEL)


def _truncate(d: Path) -> None:
    p = d / RECORD_FILE
    p.write_bytes(p.read_bytes()[:50])


def _doc(d: Path, **kw) -> None:
    p = d / RECORD_FILE
    doc = json.loads(p.read_text())
    doc.update(kw)
    p.write_text(json.dumps(doc))


def _folder_for(name: str):
    def f(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()
    return f


def _file_for_record(d: Path) -> None:
    shutil.rmtree(d)
    d.write_text("not a folder")


TAMPER = {
    "truncated record.json": (_truncate, "corrupt JSON"),
    "empty record.json": (lambda d: (d / RECORD_FILE).write_text(""), "corrupt JSON"),
    "scalars a string": (lambda d: _doc(d, scalars="fast"), "'scalars' should be an object"),
    "a scalar a list": (lambda d: _doc(d, scalars={"motion.cuts": [1]}), "scalar 'motion.cuts' should be a number"),
    "keyframes a list": (lambda d: _doc(d, keyframes=[0, 4]), "'keyframes' should be an object"),
    "frames strings": (lambda d: _doc(d, keyframes={"frames": ["a"]}), "'keyframes.frames' should be"),
    "arrays a string": (lambda d: _doc(d, arrays="x"), "'arrays' should be an object"),
    "array entry a number": (lambda d: _doc(d, arrays={"structural.thumbnails": 3}), "should be an object"),
    "thumbnails shape bad": (lambda d: _doc(d, thumbnails={"shape": "3x72"}), "'thumbnails.shape'"),
    "samples a string": (lambda d: _doc(d, samples="many"), "'samples' should be an integer"),
    "item_key a number": (lambda d: _doc(d, item_key=5), "missing 'item_key'"),
    "keyframes.npz missing": (lambda d: (d / ARRAYS_FILE).unlink(), "missing (record.json lists arrays)"),
    "keyframes.npz corrupt": (lambda d: (d / ARRAYS_FILE).write_bytes(b"PK\x03\x04garbage"), "corrupt"),
    "keyframes.jpg corrupt": (lambda d: (d / THUMBNAILS_FILE).write_bytes(b"\xff\xd8junk"), "does not match"),
    "folder for record.json": (_folder_for(RECORD_FILE), "is a folder where a file should be"),
    "folder for keyframes.npz": (_folder_for(ARRAYS_FILE), "is a folder where a file should be"),
    "file for the record folder": (_file_for_record, "is a file where the baseline folder should be"),
    "another item's record": (lambda d: _doc(d, item_key="specs/other/x"), "belongs to specs/other/x"),
    "record.json symlinked out": (lambda d: ((d / RECORD_FILE).unlink(), (d / RECORD_FILE).symlink_to("/etc/hostname")),
                                  "outside its baseline folder"),
}


@pytest.mark.parametrize("kind", list(TAMPER))
def test_tampered_baseline_is_a_clear_error_and_update_repairs_it(tmp_path: Path, kind: str) -> None:
    tamper, words = TAMPER[kind]
    store = BaselineStore(tmp_path / "baselines")
    store.queue(_record(version=0.0))
    store.flush()
    tamper(_rec_dir(store))
    with pytest.raises(BaselineError) as e:
        store.load(ITEM, MODEL)
    msg = str(e.value)
    assert words in msg and str(tmp_path / "baselines") in msg and "--ltx-update-baselines" in msg
    assert "\n" not in msg
    store.queue(_record(version=1.0))
    summary = store.flush()
    assert [c.kind for c in summary.changes] == [ChangeKind.UPDATED]
    assert "replaced an unusable baseline" in summary.changes[0].notes[0]
    assert store.load(ITEM, MODEL).scalars["check.version"] == 1.0
    assert not _leftovers(store.root)


def test_symlinked_record_out_of_the_store_is_neither_read_nor_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    store = BaselineStore(tmp_path / "proj" / "baselines", fence=tmp_path / "proj")
    store.queue(_record(version=0.0))
    store.flush()
    d = _rec_dir(store)
    shutil.copytree(d, outside)
    shutil.rmtree(d)
    d.symlink_to(outside)
    before = _snapshot(outside)
    with pytest.raises(BaselineError, match="is a symlink to .*outside the baseline store"):
        store.load(ITEM, MODEL)
    store.queue(_record(version=1.0))
    summary = store.flush()
    assert summary.failed and "outside the baseline store" in summary.failed[0].notes[0]
    assert _snapshot(outside) == before


def test_symlinked_baselines_folder_out_of_the_project_is_refused(tmp_path: Path) -> None:
    proj, outside = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir()
    outside.mkdir()
    (proj / "baselines").symlink_to(outside)
    store = BaselineStore(proj / "baselines", fence=proj)
    with pytest.raises(BaselineError, match="outside the project"):
        store.load(ITEM, MODEL)
    store.queue(_record())
    summary = store.flush()
    assert summary.failed and not list(outside.iterdir())
    assert store.all_keys() == set()


def test_cache_entry_symlinked_out_of_the_cache_is_a_miss_and_never_followed(tmp_path: Path) -> None:
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.storage import StoreError

    cache = RenderCache(tmp_path / "proj" / ".ltx-cache", fence=tmp_path / "proj")
    key = "d" * 64
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    d = cache.entry_dir(key)
    d.parent.mkdir(parents=True)
    d.symlink_to(victim)
    assert cache.get(key) is None
    assert not d.is_symlink() and (victim / "keep.txt").read_text() == "mine"
    d.symlink_to(victim)
    with pytest.raises(StoreError, match="outside the cache"):
        cache.put(key, tmp_path / "none.mp4", {})
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------------- through pytest


CARDS = textwrap.dedent("""
    defaults:
      expect:
        motion: {}
    clips:
      - id: a
        testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}
      - id: b
        testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 2}
""")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("specs/", "-p", "no:cacheprovider", *args)


def _spec(pytester: pytest.Pytester, body: str = CARDS) -> None:
    (pytester.path / "specs").mkdir(exist_ok=True)
    (pytester.path / "specs" / "life.yaml").write_text(body)


def test_symlinked_baselines_do_not_make_update_write_outside(pytester: pytest.Pytester,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (pytester.path / "baselines").symlink_to(outside)
    _spec(pytester)
    r = _run(pytester, "--ltx-update-baselines")
    out = r.stdout.str()
    assert list(outside.iterdir()) == []
    assert "2 of 2 baseline(s) NOT written" in out and "is a symlink to" in out
    assert "Traceback" not in out and r.ret != 0


def test_full_baseline_volume_through_pytest_is_one_line(pytester: pytest.Pytester, small_volume: Path) -> None:
    _spec(pytester)
    _fill(small_volume, 0)
    r = _run(pytester, "--ltx-update-baselines", f"--ltx-baselines={small_volume / 'b'}")
    out = r.stdout.str()
    assert "Traceback" not in out and r.ret != 0
    lines = [ln for ln in out.splitlines() if "NOT written" in ln and ln.startswith("pytest-ltx:")]
    assert len(lines) == 1 and "no space left on the device" in lines[0] and str(small_volume / "b") in lines[0]


def test_prune_lists_what_it_deletes_before_deleting(pytester: pytest.Pytester) -> None:
    _spec(pytester)
    _run(pytester, "--ltx-update-baselines").assert_outcomes(passed=2)
    _spec(pytester, CARDS.split("  - id: b")[0])
    r = _run(pytester, "--ltx-prune-baselines")
    out = r.stdout.str()
    first = out.index("pytest-ltx: pruning 1 unused baseline(s)")
    assert out.index("delete specs/life/b [testcard]") > first
    assert out.index("1 baseline(s) removed") > first
    assert not (pytester.path / "baselines" / "specs" / "life" / "b").exists()


def test_disk_full_while_a_clip_is_written_is_an_item_error_in_one_line(pytester: pytest.Pytester) -> None:
    """The cache / report volume fills while an item writes its clip: a pytest error on that item with
    one line naming the cause and the file, not a traceback through runner.py."""
    _spec(pytester)
    pytester.makeconftest("""
        import errno
        import pytest_ltx.testcard as tc

        def full(spec, path, **kw):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        tc.write = full
    """)
    r = _run(pytester)
    r.assert_outcomes(errors=2)
    out = r.stdout.str()
    assert "Traceback" not in out and "runner.py" not in out
    lines = [ln for ln in out.splitlines() if "file system error: no space left on the device" in ln]
    assert lines and all("life.yaml:" in ln and ".mp4" in ln for ln in lines)
    import re

    assert len({re.search(r"life\.yaml:(\d+)", ln).group(1) for ln in lines}) == 2  # both items, by spec line
