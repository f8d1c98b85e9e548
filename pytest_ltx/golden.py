"""The golden-baseline step of one item: build its current record, compare it with the stored one, and
queue a new one when the user asked for it (``--ltx-update-baselines``, ``--ltx-create-missing``,
``--ltx-calibrate N``). Writes happen once, at session end, on the controller (see ``finish.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pytest_ltx.outcome import BaselineStatus, Outcome, Status

if TYPE_CHECKING:
    from pytest_ltx.baseline import BaselineRecord, BaselineStore
    from pytest_ltx.evaluate import Evaluation
    from pytest_ltx.item import ItemKey
    from pytest_ltx.options import Settings
    from pytest_ltx.runner import ClipRun
    from pytest_ltx.spec import ItemSpec

__all__ = ["GoldenStep", "current_record", "golden_step", "load_baseline"]


@dataclass
class GoldenStep:
    outcomes: list[Outcome] = field(default_factory=list)
    #: the record to write at session end (JSON payload), or None
    payload: dict[str, Any] | None = None
    #: what happened, for results.json: status, path, environment warnings, comparison
    info: dict[str, Any] = field(default_factory=dict)
    #: what differs between the baseline's environment and this run's (``torch 2.4.0 → 2.5.1``), one line
    warnings: list[str] = field(default_factory=list)
    #: this run's record (JSON payload) when the baseline is missing or did not match: carried in
    #: results.json so ``pytest-ltx baselines accept --from results.json`` can write it without re-rendering
    candidate: dict[str, Any] | None = None


def _provenance(item: "ItemSpec", run: "ClipRun") -> dict[str, Any]:
    """How the clip was made, without machine-specific values (paths, versions): those would rewrite
    every baseline on every machine. Versions live in the record's environment instead."""
    if run.source == "render":
        req = dict(run.provenance.get("request", {}))
        image = req.pop("image", None)
        out: dict[str, Any] = {"source": "render", "seed": item.seed, "request": req,
                               "fingerprint": run.provenance.get("fingerprint")}
        if item.clip.image is not None:
            req["image"] = item.clip.image  # as written in the spec, relative
            if isinstance(image, dict):
                out["image_sha256"] = image.get("sha256")
        if run.provenance.get("model_identity"):
            out["model_identity"] = run.provenance["model_identity"]
        manifest = run.provenance.get("manifest")
        if manifest:  # versions live in the environment (see above); the diff reads them from there
            out["manifest"] = {k: v for k, v in manifest.items() if k != "versions"}
        return out
    if run.source == "file":
        return {"source": "file", "file": item.clip.file.path if item.clip.file else None,
                "file_sha256": run.provenance.get("file_sha256")}
    return {"source": "testcard", "testcard_sha256": run.provenance.get("testcard_sha256")}


def _gpu(identity: Any) -> Any:
    """The GPU identity a baseline environment keeps (not the memory size: the same model has variants)."""
    if not isinstance(identity, dict):
        return None
    return {k: v for k, v in identity.items() if k != "total_gb"}


def current_record(item: "ItemSpec", key: "ItemKey", run: "ClipRun", evaluation: "Evaluation") -> "BaselineRecord":
    """This run's values in baseline form (scalars, keyframe arrays, thumbnails, provenance). The
    keyframe pictures come from the evaluation's streaming pass (``evaluate(..., keyframes=True)``)."""
    from pytest_ltx.baseline import BaselineRecord, collect_environment, make_thumbnails
    from pytest_ltx.baseline.record import storable_scalars

    kf = evaluation.keyframes
    if kf is None:
        raise ValueError("current_record needs an evaluation made with keyframes=True")
    arrays = {k: np.asarray(v) for k, v in evaluation.arrays().items()}
    scalars = storable_scalars(evaluation.scalars())
    return BaselineRecord(
        item_key=key.baseline,
        model_key=run.model_key,
        scalars=scalars,
        arrays=arrays,
        keyframe_frames=list(kf.indices),
        fps=evaluation.info.fps,
        thumbnails=make_thumbnails(kf.frames),
        provenance=_provenance(item, run),
        environment=collect_environment(device=run.provenance.get("device"), dtype=run.provenance.get("dtype"),
                                        gpu=_gpu(run.provenance.get("gpu"))),
    )


def _request_changes(base: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between the request a baseline was made from and this run's (prompt, steps…): a
    prompt edit on a model that barely reacts to it would otherwise pass silently."""
    b, n = base.get("request") or {}, now.get("request") or {}
    out = []
    for k in sorted(set(b) | set(n)):
        if k in ("profile",) or b.get(k) == n.get(k):
            continue
        out.append(f"{k} {b.get(k)!r} → {n.get(k)!r}")
    for k in ("testcard_sha256", "file_sha256", "image_sha256"):
        if base.get(k) and now.get(k) and base[k] != now[k]:
            out.append(f"{k.split('_')[0]} content changed")
    return out


def _identity_change(store: Any, item_key: str, others: Sequence[str], run: "ClipRun") -> list[str]:
    """What changed in the model since a baseline of the same profile was made (``transformer: weights``):
    a "missing" baseline then says why, instead of leaving the user to guess."""
    from pytest_ltx.baseline import BaselineError
    from pytest_ltx.baseline.record import model_key_profile
    from pytest_ltx.model_identity import describe_change

    now = run.provenance.get("model_identity")
    profile = model_key_profile(run.model_key)
    for other in others:
        if model_key_profile(other) != profile:
            continue
        try:
            old = store.load(item_key, other)
        except BaselineError:
            continue
        change = describe_change((old.provenance if old else {}).get("model_identity"), now)
        if change:
            return [f"{other}: " + "; ".join(change)]
    return []


def _manifest_changes(base: "BaselineRecord", current: "BaselineRecord") -> list[str]:
    """How the render pipeline differs between the baseline and this run (library versions from the
    records' environments, the rest from their render manifests); [] when either has no manifest."""
    from pytest_ltx.render.manifest import manifest_changes

    def with_versions(rec: "BaselineRecord") -> dict[str, Any] | None:
        m = rec.provenance.get("manifest")
        if not m:
            return None
        libs = (rec.environment or {}).get("libraries") or {}
        return {**m, "versions": {k: libs.get(k) for k in ("diffusers", "torch", "transformers") if k in libs}}

    return manifest_changes(with_versions(base), with_versions(current))


def load_baseline(item: "ItemSpec", key: "ItemKey", run: "ClipRun",
                  store: "BaselineStore") -> "tuple[BaselineRecord | None, str | None]":
    """The stored baseline of this item and model (None when there is none or baselines are off), and
    the reason it could not be read, if it could not."""
    from pytest_ltx.baseline import BaselineError

    if not item.expect.baseline.enabled:
        return None, None
    item_key = key.baseline
    try:
        base = store.load(item_key, run.model_key)
    except BaselineError as err:
        return None, str(err)
    except OSError as err:  # an unreadable store (permissions, a vanished mount): this item's error, one line
        from pytest_ltx.storage import describe_os_error

        return None, (f"{store.path_for(item_key, run.model_key)}: cannot read the baseline "
                      f"({describe_os_error(err)})")
    if base is None and item.legacy_name is not None:
        # migration: items were once named by prompt position (`clip[p1-seed=0]`); a baseline stored
        # under that name is this item's if it was made from the same prompt
        try:
            old = store.load(key.renamed(item.legacy_name).baseline, run.model_key)
        except (BaselineError, OSError):
            old = None
        if old is not None and (old.provenance.get("request") or {}).get("prompt", item.prompt) == item.prompt:
            return old, None
    return base, None


#: why an item's baseline-relative clip checks were not measured, by golden-step status
_NOT_COMPARED: dict[str, str] = {
    BaselineStatus.DISABLED: "baseline comparison is off for this item",
    BaselineStatus.UNREADABLE: "the baseline could not be read",
    BaselineStatus.NOT_WRITTEN: "the baseline could not be rewritten",
    BaselineStatus.CREATED: "the baseline is created by this run",
    BaselineStatus.UPDATED: "the baseline is rewritten by this run",
    BaselineStatus.MISSING: "no golden baseline yet",
}


def golden_step(item: "ItemSpec", key: "ItemKey", nodeid: str, run: "ClipRun", evaluation: "Evaluation", *,
                store: "BaselineStore", settings: "Settings", baseline: "BaselineRecord | None",
                read_error: str | None = None, calibration: Sequence["BaselineRecord"] = ()) -> GoldenStep:
    """Compare with the stored baseline (``load_baseline``), or queue a new one (``settings``: update,
    create-missing, calibration seeds). A baseline file that could not be read is an error outcome on
    this item naming the file and how to regenerate it. The clip's baseline-relative checks of an item
    that was not compared are "unmeasured", with the reason."""
    from pytest_ltx.baseline.compare import unmeasured_outcomes

    step = _golden_step(item, key, nodeid, run, evaluation, store=store, settings=settings, baseline=baseline,
                        read_error=read_error, calibration=calibration)
    status = step.info.get("status")
    if status != BaselineStatus.COMPARED:
        step.outcomes += unmeasured_outcomes(item.expect.clip, _NOT_COMPARED.get(str(status), str(status)),
                                             _Scalars(evaluation.scalars()))
    return step


@dataclass(frozen=True)
class _Scalars:
    scalars: dict[str, Any]


def _clip_model(evaluation: "Evaluation") -> dict[str, Any] | None:
    clip = evaluation.results.get("clip_similarity")
    return dict(getattr(clip, "model", None) or {}) or None


def _golden_step(item: "ItemSpec", key: "ItemKey", nodeid: str, run: "ClipRun", evaluation: "Evaluation", *,
                 store: "BaselineStore", settings: "Settings", baseline: "BaselineRecord | None",
                 read_error: str | None = None, calibration: Sequence["BaselineRecord"] = ()) -> GoldenStep:
    from dataclasses import replace

    from pytest_ltx.baseline import calibrate_records, calibration_seeds, compare, missing_outcome

    step = GoldenStep()
    e = item.expect.baseline
    if not e.enabled:
        step.info = {"status": BaselineStatus.DISABLED}
        return step
    # which baseline this item used: an older model identity's baseline of the same profile is then unused
    item_key = key.baseline
    step.info = {"item_key": item_key, "model_key": run.model_key}
    st = settings
    current = current_record(item, key, run, evaluation)
    if calibration:
        runs = [current, *calibration]
        if run.source == "render" and item.seed is not None:
            # current_record writes the item's own seed into every run's provenance; the record's
            # calibration.seeds must say which seeds were really rendered
            seeds = calibration_seeds(item.seed, len(runs), neighbouring=st.calibrate_seeds == "neighbouring")
            runs = [replace(r, provenance={**r.provenance, "seed": sd}) for r, sd in zip(runs, seeds)]
        current = calibrate_records(runs)
    rel = store.path_for(item_key, run.model_key)
    try:
        rel_s = str(rel.relative_to(st.rootdir))
    except ValueError:
        rel_s = str(rel)
    step.info["path"] = rel_s
    base = baseline
    legacy = base is not None and base.item_key != item_key
    if legacy:
        assert base is not None
        step.info["legacy_key"] = base.item_key
        if not st.update_baselines:
            step.warnings.append(f"baseline found under this item's old positional name {base.item_key!r}; "
                                 "`--ltx-update-baselines` moves it to the new name")
    if read_error is not None and not st.update_baselines:  # rewriting a corrupt one is what update is for
        # the generic fix names `pytest <spec>`: say exactly which item to rerun
        msg = read_error.replace("`pytest <spec> ", f"`pytest '{nodeid}' ")
        step.outcomes.append(Outcome("baseline.read", Status.ERROR, msg))
        step.info["status"] = BaselineStatus.UNREADABLE
        return step

    if st.update_baselines or (base is None and st.create_missing):
        broken = [o.check for o in evaluation.outcomes if o.status is Status.ERROR]
        if broken:  # a metric that crashed would be written as "not measured" and gate nothing from then on
            step.outcomes.append(Outcome(
                "baseline.update", Status.ERROR,
                f"baseline {rel_s} not written: {', '.join(broken)} could not be computed in this run "
                f"(the {'old baseline stays' if base is not None else 'baseline stays missing'})"))
            step.info["status"] = BaselineStatus.NOT_WRITTEN
            return step
        step.payload = current.to_payload()
        if base is None:
            step.outcomes.append(missing_outcome(item_key, run.model_key, rel_s, created=True, nodeid=nodeid))
            step.info["status"] = BaselineStatus.CREATED
        else:
            cmp = compare(current, base, e, clip=item.expect.clip, clip_model=_clip_model(evaluation))
            moved = [d for d in cmp.metrics if not d.ok]
            msg = f"baseline {rel_s} will be rewritten"
            if moved:
                msg += ": " + "; ".join(d.message() for d in moved[:3]) + (f" (+{len(moved) - 3} more)" if len(moved) > 3 else "")
            step.outcomes.append(Outcome("baseline.update", Status.PASSED, msg))
            step.info["status"] = BaselineStatus.UPDATED
            step.info["comparison"] = cmp.to_dict()
            if legacy:
                # removed once the new one is written (finish.py)
                step.info["moved_from"] = [base.item_key, run.model_key]
        return step

    broken = any(o.status is Status.ERROR for o in evaluation.outcomes)
    if base is None:
        others = store.models_for(item_key)
        step.outcomes.append(missing_outcome(item_key, run.model_key, rel_s, nodeid=nodeid, other_models=others,
                                             identity_change=_identity_change(store, item_key, others, run)))
        step.info["status"] = BaselineStatus.MISSING
        if not broken:
            step.candidate = current.to_payload()
        return step

    # every baseline-relative number (keyframe CLIP cosine, SSIM, audio spectra, prompt-score delta) is
    # measured here, with one keyframe alignment (baseline/keyframes.py)
    cmp = compare(current, base, e, clip=item.expect.clip, clip_model=_clip_model(evaluation))
    step.outcomes += cmp.outcomes()
    if cmp.environment:
        step.warnings.append("baseline made in a different environment: " + "; ".join(cmp.environment))
    pipeline_changes = _manifest_changes(base, current)
    if pipeline_changes:
        from pytest_ltx.render.manifest import format_changes

        step.info["manifest_diff"] = pipeline_changes
        failed = any(o.failed for o in step.outcomes)
        step.warnings.append(("baseline failed; " if failed else "")
                             + "pipeline changed since the baseline: " + format_changes(pipeline_changes))
    changed = _request_changes(base.provenance, current.provenance)
    if changed:
        step.warnings.append("baseline made from a different request (update it if the change is intended): "
                             + "; ".join(changed))
        step.info["request_changes"] = changed
    step.info["status"] = BaselineStatus.COMPARED
    step.info["comparison"] = cmp.to_dict()
    if any(o.failed for o in step.outcomes) and not broken:
        step.candidate = current.to_payload()
    return step
