"""The GPU a process renders on: which one (one per xdist worker), what it is, and how much is free.

- **Pinning.** Under pytest-xdist each worker renders on its own GPU: worker ``gwN`` takes the N-th visible
  device. More workers than GPUs is an error that says how to fix it (``-n`` ≤ the GPU count): two 65 GB
  pipelines on one card would only run out of memory later. A profile that names a device (``cuda:1``)
  keeps it. Nothing here initialises CUDA on import; CPU runs are unaffected.
- **Identity** (name, compute capability, driver, CUDA runtime, cuDNN) goes into provenance, the render
  cache key and the baseline environment: kernels differ between architectures, so an A100's bits must
  never be served to an H100, and a baseline made on another GPU must say so.
- **Free memory** (``torch.cuda.mem_get_info``), not the total, is what the VRAM planner fits into.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from typing import Any, Mapping

from pytest_ltx.errors import WorkerGpuError  # noqa: F401 (re-exported)

__all__ = ["WorkerGpuError", "worker_index", "worker_count", "pin_device", "gpu_identity", "free_memory_gb",
           "device_index"]


def worker_index(env: Mapping[str, str] | None = None) -> int | None:
    """0 for ``gw0``…; None outside xdist."""
    env = os.environ if env is None else env
    wid = env.get("PYTEST_XDIST_WORKER", "")
    if wid.startswith("gw") and wid[2:].isdigit():
        return int(wid[2:])
    return None


def worker_count(env: Mapping[str, str] | None = None) -> int | None:
    env = os.environ if env is None else env
    n = env.get("PYTEST_XDIST_WORKER_COUNT")
    return int(n) if n and n.isdigit() else None


def device_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def pin_device(device: str, cuda_available: bool, device_count: int, env: dict[str, str] | None = None) -> str:
    """The device a render in this process uses for a profile asking for ``device``.

    ``auto``/``cuda`` on an xdist worker with CUDA → ``cuda:<worker index>``; an explicit ``cuda:N`` or
    ``cpu`` is kept; outside xdist or without CUDA nothing changes.
    """
    idx = worker_index(env)
    if idx is None or not cuda_available or device not in ("auto", "cuda"):
        return device
    count = worker_count(env) or idx + 1
    if count > device_count or idx >= device_count:
        raise WorkerGpuError(
            f"pytest-xdist started {count} workers but only {device_count} CUDA device(s) are visible: each "
            f"worker renders on its own GPU (worker gw{idx} has none). Run with `-n {device_count}` (or fewer), "
            "or make more GPUs visible (CUDA_VISIBLE_DEVICES)."
        )
    return f"cuda:{idx}"


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    except Exception:
        pass
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            return out.strip().splitlines()[0].strip() or None
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    return None


@lru_cache(maxsize=None)
def _identity(index: int) -> tuple[tuple[str, Any], ...]:
    import torch

    props = torch.cuda.get_device_properties(index)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return (
        ("name", str(props.name)),
        ("compute_capability", f"{props.major}.{props.minor}"),
        ("total_gb", round(props.total_memory / 2**30, 1)),
        ("driver", _driver_version()),
        ("cuda", torch.version.cuda),
        ("cudnn", cudnn),
    )


def gpu_identity(device: str) -> dict[str, Any] | None:
    """What GPU ``device`` is (None for CPU): name, compute capability, memory, driver, CUDA, cuDNN."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return dict(_identity(device_index(device)))


def free_memory_gb(device: str) -> float | None:
    """Free memory on ``device`` in GiB (None on CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(device_index(device))
    return free / 2**30
