"""Cost of the model identity on a checkpoint-sized folder: first fingerprint vs repeated.

A folder of N sparse shards (default 8 × 10 GiB, the shape of a real LTX-2.3 transformer + text encoder)
is fingerprinted three ways in one run:

* **first**     — a fresh digest cache: every byte of every shard is read and hashed (SHA-256);
* **repeated**  — a new session on the same machine: the digest cache answers by (path, size, mtime, inode);
* **reference** — plain ``hashlib.sha256`` over the same number of bytes from memory, measured in the
  same run: the floor any full-content hash pays on this machine (the ratio, not the seconds, is the result).

Sparse files read back as zeros without touching the disk, so "first" measures hashing, not I/O; on real
weights the disk's read rate is the other bound. The script ends with the estimate for a first
fingerprint of real LTX-2.3 weights at the measured rate.

    python benchmarks/bench_fingerprint.py [--shards 8] [--shard-gib 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_ltx.model_identity import DigestCache, model_identity  # noqa: E402

#: bytes a first fingerprint of LTX-2.3 reads: ~22 B-parameter transformer + Gemma-3-12B text encoder in
#: bf16, plus VAEs, vocoder and connectors (≈ 1.5 GB)
LTX23_BYTES = (22e9 + 12e9) * 2 + 1.5e9


def make_folder(root: Path, shards: int, shard_bytes: int) -> Path:
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "LTX2Pipeline",
                                                       "transformer": ["diffusers", "LTX2VideoTransformer3DModel"]}))
    t = root / "transformer"
    t.mkdir()
    (t / "config.json").write_text(json.dumps({"num_layers": 48}))
    names = [f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    for n in names:
        with open(t / n, "wb") as f:
            f.truncate(shard_bytes)  # sparse: no disk space used
    (t / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {f"w{i}": n for i, n in enumerate(names)}}))
    return root


def reference_rate(total: int) -> float:
    """Bytes/s of hashlib.sha256 over ``total`` bytes from memory, one core per thread like the digest cache."""
    from concurrent.futures import ThreadPoolExecutor

    buf = bytes(8 << 20)
    workers = min(4, os.cpu_count() or 1)
    per = total // workers

    def one(_: int) -> None:
        h = hashlib.sha256()
        for _ in range(per // len(buf)):
            h.update(buf)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(workers)))
    return total / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-gib", type=float, default=10.0)
    a = ap.parse_args()
    shard_bytes = int(a.shard_gib * (1 << 30))
    total = a.shards * shard_bytes
    with tempfile.TemporaryDirectory(prefix="ltx-fp-bench-") as tmp:
        folder = make_folder(Path(tmp) / "model", a.shards, shard_bytes)
        db = Path(tmp) / "digests.sqlite"

        t0 = time.perf_counter()
        first = model_identity(folder, cache=DigestCache(db))
        t_first = time.perf_counter() - t0

        t0 = time.perf_counter()
        again = DigestCache(db)
        repeated = model_identity(folder, cache=again)
        t_rep = time.perf_counter() - t0
        assert repeated.fingerprint == first.fingerprint and again.misses == 0

        ref = reference_rate(total)
    rate = total / t_first
    print(f"folder: {a.shards} × {a.shard_gib:g} GiB sparse shards ({total / 2**30:.0f} GiB)")
    print(f"first fingerprint    {t_first:8.1f} s   {rate / 1e9:5.2f} GB/s")
    print(f"repeated fingerprint {t_rep:8.3f} s   ({t_first / t_rep:,.0f}× faster; digest cache hit by stat)")
    print(f"reference sha256     {total / ref:8.1f} s   {ref / 1e9:5.2f} GB/s  → first / reference = {ref / rate:.2f}×")
    print(f"estimate: first fingerprint of real LTX-2.3 weights ({LTX23_BYTES / 1e9:.0f} GB) ≈ "
          f"{LTX23_BYTES / rate:.0f} s at this rate (disk permitting), then ≈ {t_rep:.2f} s per session; "
          "a Hugging Face cache snapshot costs no hashing at all (blobs are named by their sha256)")


if __name__ == "__main__":
    main()
