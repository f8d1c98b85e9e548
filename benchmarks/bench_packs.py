"""Collecting a prompt pack: a 200-row CSV pack against the same 200 items written out as clips.

Loads (``load_spec_file`` + ``expand``, what a pytest collection does per spec file) a spec whose one clip
takes its rows from ``packs/products.csv`` (200 rows × 3 columns, a ``name`` column), and, as the
reference measured in the same run, a spec with the 200 clips written out one by one (same prompts, no
pack). Prints the best of ``--repeats`` times for each, the ratio, and the time per item; then pytest
``--collect-only`` of the pack spec against a one-clip spec (the fixed cost: plugin and pydantic imports).

    .venv/bin/python benchmarks/bench_packs.py [--rows 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from pytest_ltx.spec import expand, load_spec_file
    from pytest_ltx.spec.presets import Project

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "specs" / "packs").mkdir(parents=True)
        rows = [(f"sku-{i}", f"Sneaker model {i}", ("concrete", "marble", "sand")[i % 3]) for i in range(args.rows)]
        (root / "specs" / "packs" / "products.csv").write_text(
            "name,product,surface\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows), encoding="utf-8")
        (root / "specs" / "pack.yaml").write_text(
            "defaults: {model: tiny, width: 64, height: 64, frames: 9, steps: 1}\n"
            "clips:\n  - id: shot\n    prompt: \"A {product} on {surface}\"\n    vars: {from: packs/products.csv}\n",
            encoding="utf-8")
        (root / "specs" / "flat.yaml").write_text(
            "defaults: {model: tiny, width: 64, height: 64, frames: 9, steps: 1}\nclips:\n" + "".join(
                f"  - id: shot-{a}\n    prompt: \"A {b} on {c}\"\n" for a, b, c in rows), encoding="utf-8")
        project = Project(root=root)

        def pack() -> int:
            return len(expand(load_spec_file(root / "specs" / "pack.yaml", project=project)))

        def flat() -> int:
            return len(expand(load_spec_file(root / "specs" / "flat.yaml", project=project)))

        assert pack() == flat() == args.rows
        t_pack = best_of(pack, args.repeats)
        t_flat = best_of(flat, args.repeats)
        print(f"{args.rows}-row CSV pack: {t_pack * 1000:.1f} ms ({t_pack / args.rows * 1e6:.0f} µs/item)")
        print(f"same items written out as {args.rows} clips (reference): {t_flat * 1000:.1f} ms")
        print(f"ratio pack / written out: {t_pack / t_flat:.2f}×")
        (root / "pyproject.toml").write_text("")
        (root / "specs" / "one.yaml").write_text("defaults: {model: tiny}\nclips:\n  - id: one\n    prompt: a\n")

        def collect(spec: str) -> float:
            r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "-p", "no:hypothesispytest", spec], cwd=root, capture_output=True, text=True)
            last = [ln for ln in r.stdout.splitlines() if "collected in" in ln]
            return float(last[-1].split(" in ")[1].rstrip("s")) if last else float("nan")

        t_one = min(collect("specs/one.yaml") for _ in range(2))
        t_all = min(collect("specs/pack.yaml") for _ in range(2))
        print(f"pytest --collect-only (pytest's 'collected in', plugin imports included): pack {t_all:.2f} s, "
              f"a one-clip spec {t_one:.2f} s (reference) → the pack adds {t_all - t_one:+.2f} s")

if __name__ == "__main__":
    main()
