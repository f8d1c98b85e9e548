"""Is there a GPU? Answered without importing torch when the answer is certainly no.

Importing torch costs 1-3 s of CPU; a warm rerun (everything cached) and ``pytest-ltx evaluate`` must not
pay it just to learn that a machine without any GPU device node has no GPU. On Linux, CUDA (and ROCm's
torch.cuda) needs ``/dev/nvidia*`` (or ``/dev/kfd``) device nodes; without them the answer is "no".
Anywhere else, or when such nodes exist, torch is asked.
"""

from __future__ import annotations

import functools
import glob
import os
import sys

__all__ = ["cuda_available", "cuda_device_count"]


@functools.lru_cache(maxsize=1)
def _no_gpu_nodes() -> bool:
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return False
    return not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd"))


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch on a Linux machine with no GPU nodes."""
    if _no_gpu_nodes():
        return False
    import torch

    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    if _no_gpu_nodes():
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
