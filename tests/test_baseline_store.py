"""Baseline records and the store: round trips, atomic flush under a simulated kill, concurrent flushes,
unused detection and pruning, corrupt-record errors, the update summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_ltx.baseline import store as store_mod
from pytest_ltx.baseline.record import (
    ARRAYS_FILE,
    RECORD_FILE,
    THUMBNAILS_FILE,
    BaselineError,
    BaselineRecord,
    key_to_relpath,
    make_item_key,
    make_model_key,
    make_structural_thumbs,
    make_thumbnails,
    relpath_to_key,
    safe_name,
    storable_scalars,
    unsafe_name,
)
from pytest_ltx.baseline.store import BaselineStore, ChangeKind

REPO = Path(__file__).resolve().parents[1]
ITEM = "specs/robots/robot-dance[seed=1]"
MODEL = "tiny-0123456789ab"


def _record(item: str = ITEM, model: str = MODEL, *, version: float = 0.0, k: int = 3, **kw) -> BaselineRecord:
    """A record whose every part (scalars, arrays, thumbnails) carries ``version``, so a mix is detectable."""
    rng = np.random.default_rng(int(version * 1000) % 2**32)
    args = dict(
        scalars={"motion.cuts": 0, "motion.flicker_score": 0.004 + version, "check.version": version,
                 "av_sync.offset_ms": None},
        arrays={"clip_embeddings": rng.normal(size=(k, 16)) + version,
                "structural_thumbs": np.full((k, 32, 32), int(version * 10) % 256, np.uint8)},
        keyframe_frames=[i * 12 for i in range(k)],
        fps=24.0,
        thumbnails=np.full((k, 18, 24, 3), int(version * 10) % 256, np.uint8),
        provenance={"seed": 1, "steps": 8},
        environment={"device": "cpu", "dtype": "float32", "libraries": {"torch": "2.14.1"}},
    )
    args.update(kw)
    return BaselineRecord(item, model, **args)


def _version(store: BaselineStore, item: str = ITEM, model: str = MODEL) -> float | None:
    rec = store.load(item, model)
    if rec is None:
        return None
    v = rec.scalars["check.version"]
    # every part of the record must come from the same version: no half-written baseline
    assert rec.same_content(_record(item, model, version=v)), f"{item}: parts of different versions"
    assert abs(float(rec.thumbnails.mean()) - int(v * 10) % 256) < 2, f"{item}: strip of another version"
    return v


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_dir()]


# ---------------------------------------------------------------------------------------------- identity


@pytest.mark.parametrize(
    "name",
    ["robot-dance[seed=1]", "a b", "x/y", ".hidden", "..", "", "CON", "end.", "%41", "été—ü", "p=a,b+c@(1)"],
)
def test_safe_name_round_trips(name: str) -> None:
    safe = safe_name(name)
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert not any(c in safe for c in '<>:"|?*')
    assert unsafe_name(safe) == name


def test_long_name_is_cut_and_hashed_and_key_still_found(tmp_path: Path) -> None:
    long_item = "specs/x/" + "prompt-" + "w" * 300
    assert len(safe_name(long_item.split("/")[-1])) <= 100
    assert relpath_to_key(key_to_relpath(long_item, MODEL)) is None
    store = BaselineStore(tmp_path)
    store.queue(_record(long_item))
    store.flush()
    assert store.all_keys() == {(long_item, MODEL)}
    assert store.load(long_item, MODEL) is not None


def test_keys(tmp_path: Path) -> None:
    assert make_item_key("specs/robots.yaml", "robot-dance[seed=1]") == ITEM
    assert make_item_key(tmp_path / "specs" / "a" / "b.yml", "c", rootdir=tmp_path) == "specs/a/b/c"
    assert make_model_key("tiny", "0123456789abcdef") == MODEL
    with pytest.raises(ValueError):
        make_item_key(Path("/elsewhere/specs/x.yaml"), "c", rootdir=tmp_path)
    assert relpath_to_key(key_to_relpath(ITEM, MODEL)) == (ITEM, MODEL)


# ---------------------------------------------------------------------------------------------- record


def test_record_normalises_and_round_trips_through_disk_and_payload(tmp_path: Path) -> None:
    rec = _record(scalars={"a.x": 0.123456789, "a.n": np.int64(3), "a.nan": float("nan"), "a.b": True})
    assert rec.scalars == {"a.b": True, "a.n": 3, "a.nan": None, "a.x": 0.123457}
    assert rec.arrays["clip_embeddings"].dtype == np.float16
    assert rec.arrays["structural_thumbs"].dtype == np.uint8

    payload = json.loads(json.dumps(rec.to_payload()))  # what xdist ships: plain JSON
    assert BaselineRecord.from_payload(payload).same_content(rec)

    store = BaselineStore(tmp_path)
    store.queue(rec)
    store.flush()
    back = store.load(ITEM, MODEL)
    assert back is not None and back.same_content(rec)
    assert back.created and back.updated
    assert back.thumbnails.shape == rec.thumbnails.shape  # decoded JPEG: close, not equal
    assert np.abs(back.thumbnails.astype(int) - rec.thumbnails).max() <= 3
    assert back.keyframe_times == [0.0, 0.5, 1.0]

    d = store.path_for(ITEM, MODEL)
    assert sorted(p.name for p in d.iterdir()) == sorted([ARRAYS_FILE, THUMBNAILS_FILE, RECORD_FILE])
    text = (d / RECORD_FILE).read_text()
    doc = json.loads(text)
    assert list(doc) == sorted(doc) and text.startswith('{\n  "arrays"')  # sorted, indent 2
    assert doc["scalars"]["a.x"] == 0.123457
    assert doc["arrays"]["clip_embeddings"]["dtype"] == "float16"
    # binaries stay small and deterministic (same arrays → same bytes → no git churn)
    assert (d / ARRAYS_FILE).stat().st_size < 4000 and (d / THUMBNAILS_FILE).stat().st_size < 2000
    assert rec.arrays_npz() == BaselineRecord.from_payload(payload).arrays_npz()


def test_storable_scalars_drop_comparison_values() -> None:
    got = storable_scalars({"clip_similarity.prompt_score_mean": 0.7, "clip_similarity.baseline_similarity_min": 0.9})
    assert got == {"clip_similarity.prompt_score_mean": 0.7}


def test_thumbnail_helpers() -> None:
    frames = np.zeros((2, 64, 96, 3), np.uint8)
    frames[1, :, 48:] = 255
    thumbs = make_thumbnails(frames, height=32)
    assert thumbs.shape == (2, 32, 48, 3) and thumbs.dtype == np.uint8
    gray = make_structural_thumbs(frames)
    assert gray.shape == (2, 32, 32) and gray[1, :, 20:].min() == 255 and gray[1, :, :12].max() == 0


def test_record_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="motion.x"):
        BaselineRecord(ITEM, MODEL, scalars={"motion.x": "high"})
    with pytest.raises(ValueError, match="thumbnails"):
        BaselineRecord(ITEM, MODEL, thumbnails=np.zeros((2, 8, 8), np.uint8))


# ---------------------------------------------------------------------------------------------- flush


def test_flush_reports_created_updated_unchanged_and_keeps_created_time(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.queue(_record(version=0.0))
    store.queue(_record("specs/a/b", version=0.0))
    s1 = store.flush()
    assert [c.kind for c in s1.changes] == [ChangeKind.CREATED, ChangeKind.CREATED]
    assert store.pending == []
    first = store.load(ITEM, MODEL)
    record_bytes = (store.path_for("specs/a/b", MODEL) / RECORD_FILE).read_bytes()

    store.queue(_record(version=0.5))
    store.queue(_record("specs/a/b", version=0.0))
    s2 = store.flush()
    kinds = {c.item_key: c.kind for c in s2.changes}
    assert kinds == {ITEM: ChangeKind.UPDATED, "specs/a/b": ChangeKind.UNCHANGED}
    # unchanged records are not rewritten (no timestamp churn in the PR diff)
    assert (store.path_for("specs/a/b", MODEL) / RECORD_FILE).read_bytes() == record_bytes
    updated = store.load(ITEM, MODEL)
    assert updated.created == first.created and updated.scalars["check.version"] == 0.5

    (change,) = s2.updated
    assert [m.key for m in change.moves] == ["check.version", "motion.flicker_score"]  # largest first
    assert change.moves[1].delta == pytest.approx(0.5)
    assert any("arrays changed" in n for n in change.notes)


def test_summary_renders_text_and_markdown(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.queue(_record(version=0.0))
    store.queue(_record("specs/a/b"))
    store.flush()
    many = {f"m.metric{i}": float(i) for i in range(6)}
    store.queue(_record(scalars={**_record().scalars, **many}, environment={"device": "cuda"}))
    store.queue(_record("specs/a/b"))
    store.queue(_record("specs/new/one"))
    s = store.flush()
    text = s.to_text(max_moves=3)
    assert s.headline() == "baselines: 1 created, 1 updated, 1 unchanged"
    assert f"updated  {ITEM} [{MODEL}]" in text and "created  specs/new/one" in text
    assert "… 3 more metrics moved" in text
    assert "environment: device cpu → cuda" in text
    md = s.to_markdown()
    assert md.startswith("### baselines: 1 created, 1 updated, 1 unchanged")
    # item keys are untrusted text: escaped, never inside a code span a backtick could close
    assert "| updated | specs/robots/robot\\-dance\\[seed=1\\] |" in md and "1 baseline(s) unchanged." in md
    assert json.loads(json.dumps(s.to_dict()))["counts"] == {"created": 1, "updated": 1, "unchanged": 1}
    assert BaselineStore(tmp_path / "nothing").flush().headline() == "baselines: nothing written"


ITEMS = [f"specs/suite/item{i}" for i in range(4)]


@pytest.mark.parametrize("fail_at", range(8))
def test_flush_killed_midway_leaves_each_baseline_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    root = tmp_path / "baselines"
    store = BaselineStore(root)
    for item in ITEMS[:3]:  # three exist (old = 1.0), one will be new
        store.queue(_record(item, version=1.0))
    store.flush()

    calls = {"n": 0}
    real = os.replace

    def dying_rename(src, dst):  # the process "dies" at the fail_at-th rename of the flush
        if calls["n"] == fail_at:
            raise KeyboardInterrupt("killed")
        calls["n"] += 1
        return real(src, dst)

    monkeypatch.setattr(store_mod, "_rename", dying_rename)
    for item in ITEMS:
        store.queue(_record(item, version=2.0))
    try:
        store.flush()
        finished = True
    except KeyboardInterrupt:
        finished = False
    monkeypatch.setattr(store_mod, "_rename", real)

    # a reader in another process, before any recovery: old or new, never half
    reader = BaselineStore(root, recover=False)
    for item in ITEMS:
        assert _version(reader, item) in ((1.0, 2.0) if item != ITEMS[3] else (None, 2.0))

    # the next open cleans or rolls back whatever the kill left
    BaselineStore(root)
    assert _leftovers(root) == []
    after = {item: _version(BaselineStore(root, recover=False), item) for item in ITEMS}
    for item in ITEMS[:3]:
        assert after[item] in (1.0, 2.0)
    if finished:
        assert set(after.values()) == {2.0}
    else:
        assert 1.0 in after.values() or None in after.values()


def test_kill_between_aside_and_swap_in_restores_old_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BaselineStore(tmp_path)
    store.queue(_record(version=1.0))
    store.flush()
    real = os.replace

    def die_on_swap_in(src, dst):
        if ".tmp-" in str(src):
            raise KeyboardInterrupt("killed")
        return real(src, dst)

    monkeypatch.setattr(store_mod, "_rename", die_on_swap_in)
    store.queue(_record(version=2.0))
    with pytest.raises(KeyboardInterrupt):
        store.flush()
    monkeypatch.setattr(store_mod, "_rename", real)
    target = store.path_for(ITEM, MODEL)
    assert not target.exists() and len(_leftovers(tmp_path)) == 2  # old aside + complete new temp
    # load() notices the swap in progress, waits for the lock, recovers, and finds the old record
    assert _version(BaselineStore(tmp_path, recover=False)) == 1.0
    assert _leftovers(tmp_path) == []


def test_opening_a_clean_store_takes_no_lock_and_a_dirty_one_recovers(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run opens the store: with nothing to undo it does not even take the lock (nor import filelock);
    a leftover is still found and undone under the lock."""
    store = BaselineStore(tmp_path)
    store.queue(_record(version=1.0))
    store.flush()
    locks: list[int] = []
    real_lock = BaselineStore._lock
    monkeypatch.setattr(BaselineStore, "_lock", lambda self: (locks.append(1), real_lock(self))[1])
    assert _version(BaselineStore(tmp_path)) == 1.0 and locks == []
    target = store.path_for(ITEM, MODEL)
    stray = target.parent / f".{target.name}.tmp-0123abcd"
    stray.mkdir()
    (stray / RECORD_FILE).write_text("{half written")
    assert _version(BaselineStore(tmp_path)) == 1.0 and locks == [1]
    assert not stray.exists() and _leftovers(tmp_path) == []


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
    from test_baseline_store import _record, ITEMS
    from pytest_ltx.baseline.store import BaselineStore
    version = float(sys.argv[1])
    for round_ in range(3):
        store = BaselineStore({root!r})
        for item in ITEMS:
            store.queue(_record(item, version=version + round_))
        store.flush()
    print("ok")
    """
)


def test_concurrent_flushes_from_two_processes(tmp_path: Path) -> None:
    root = tmp_path / "baselines"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(repo=str(REPO), tests=str(REPO / "tests"), root=str(root)))
    procs = [
        subprocess.Popen([sys.executable, str(script), v], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for v in ("10", "20")
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = BaselineStore(root)
    assert _leftovers(root) == []
    assert store.all_keys() == {(i, MODEL) for i in ITEMS}
    for item in ITEMS:
        assert _version(store, item) in (10.0, 11.0, 12.0, 20.0, 21.0, 22.0)


_LOOPER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
    from test_baseline_store import _record, ITEMS
    from pytest_ltx.baseline.store import BaselineStore
    store = BaselineStore({root!r})
    v = 1
    while True:
        for item in ITEMS:
            store.queue(_record(item, version=float(v)))
        store.flush()
        print(v, flush=True)
        v += 1
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_sigkill_during_flush_loop_never_leaves_half_a_baseline(tmp_path: Path, delay: float) -> None:
    """A real kill -9 at an arbitrary point of a flush loop: every baseline reads back whole, and the next
    open removes what the dead process left."""
    import signal
    import time

    root = tmp_path / "baselines"
    script = tmp_path / "looper.py"
    script.write_text(_LOOPER.format(repo=str(REPO), tests=str(REPO / "tests"), root=str(root)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.strip() == "1", proc.stderr.read()
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    reader = BaselineStore(root, recover=False)
    versions = {item: _version(reader, item) for item in ITEMS}
    assert all(v is not None and v >= 1.0 for v in versions.values()), versions
    store = BaselineStore(root)
    assert _leftovers(root) == []
    assert {item: _version(store, item) for item in ITEMS} == versions


# ---------------------------------------------------------------------------------------------- unused / prune


def test_unused_and_prune(tmp_path: Path) -> None:
    root = tmp_path / "baselines"
    store = BaselineStore(root)
    for item, model in [(ITEM, MODEL), (ITEM, "tiny-oldweights123"), ("specs/gone/item", MODEL),
                        ("specs/a/kept", "ltx23-aaaaaaaaaaaa")]:
        store.queue(_record(item, model))
    store.flush()
    assert store.models_for(ITEM) == ["tiny-0123456789ab", "tiny-oldweights123"]

    used = {(ITEM, MODEL), (("specs/a/kept", "ltx23-aaaaaaaaaaaa"))}
    assert store.unused(used) == [("specs/gone/item", MODEL), (ITEM, "tiny-oldweights123")]
    # bare item keys keep every model's baseline of that item
    assert store.unused({ITEM, "specs/a/kept"}) == [("specs/gone/item", MODEL)]

    s = store.prune(store.unused(used))
    assert [c.kind for c in s.changes] == [ChangeKind.PRUNED, ChangeKind.PRUNED]
    assert "pruned" in s.to_text()
    assert store.all_keys() == used
    assert not (root / "specs" / "gone").exists()  # emptied folders go too
    assert root.is_dir() and _leftovers(root) == []


def test_prune_killed_midway_is_finished_not_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BaselineStore(tmp_path)
    store.queue(_record(version=1.0))
    store.flush()

    def die_in_rmtree(path, ignore_errors=False):  # killed after deleting only record.json
        (Path(path) / RECORD_FILE).unlink()
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(store_mod.shutil, "rmtree", die_in_rmtree)
    with pytest.raises(KeyboardInterrupt):
        store.prune([(ITEM, MODEL)])
    monkeypatch.undo()
    assert len(_leftovers(tmp_path)) == 1
    assert BaselineStore(tmp_path).load(ITEM, MODEL) is None  # a half-deleted record never comes back
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- corrupt


def _write_one(tmp_path: Path) -> tuple[BaselineStore, Path]:
    store = BaselineStore(tmp_path)
    store.queue(_record())
    store.flush()
    return store, store.path_for(ITEM, MODEL)


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda d: (d / RECORD_FILE).write_text("{ not json"), "corrupt JSON"),
        (lambda d: (d / RECORD_FILE).write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> pr\n"), "merge-conflict"),
        (lambda d: (d / RECORD_FILE).unlink(), "no record.json"),
        (lambda d: (d / ARRAYS_FILE).unlink(), "keyframes.npz: missing"),
        (lambda d: (d / ARRAYS_FILE).write_bytes(b"garbage"), "keyframes.npz: corrupt"),
        (lambda d: (d / THUMBNAILS_FILE).write_bytes(b"garbage"), "keyframes.jpg: does not match record.json"),
        (lambda d: (d / ARRAYS_FILE).write_bytes(_record(version=3.0).arrays_npz()), "does not match record.json"),
    ],
)
def test_corrupt_record_names_the_file_and_the_fix(tmp_path: Path, damage, says: str) -> None:
    store, d = _write_one(tmp_path)
    damage(d)
    with pytest.raises(BaselineError) as e:
        store.load(ITEM, MODEL)
    msg = str(e.value)
    assert msg.startswith(str(d)) and says in msg and "--ltx-update-baselines" in msg
    # an update overwrites a corrupt baseline and says so
    store.queue(_record())
    (change,) = store.flush().updated
    assert change.notes[0].startswith("replaced an unusable baseline") and store.load(ITEM, MODEL) is not None


def test_newer_format_and_wrong_owner(tmp_path: Path) -> None:
    store, d = _write_one(tmp_path)
    doc = json.loads((d / RECORD_FILE).read_text())
    (d / RECORD_FILE).write_text(json.dumps({**doc, "format": 99}))
    with pytest.raises(BaselineError, match="newer pytest-ltx"):
        store.load(ITEM, MODEL)
    (d / RECORD_FILE).write_text(json.dumps({**doc, "item_key": "specs/other/item"}))
    with pytest.raises(BaselineError, match="belongs to specs/other/item"):
        store.load(ITEM, MODEL)


def test_missing_baseline_is_none(tmp_path: Path) -> None:
    assert BaselineStore(tmp_path / "absent").load(ITEM, MODEL) is None
    assert BaselineStore(tmp_path / "absent").all_keys() == set()
