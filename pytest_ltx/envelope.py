"""``pytest-ltx plan``: each clip item's VRAM envelope, before anything is loaded or rendered.

Collects the specs with pytest (the same items, options and profiles a run would use), then asks the VRAM
planner (``render/plan.py``) for every rendered item: weights per component from the configs on the meta
device, the activation peak for the item's size and frames, and the placement it would get in the free
memory of this machine's GPU (or of ``--free-gb``), checked against the spec's ``vram_gb_max``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["ItemEnvelope", "collect_envelopes"]


@dataclass(frozen=True)
class ItemEnvelope:
    nodeid: str
    profile: str | None
    size: str
    plan: Any  # the VRAM plan; None when ``error`` says why there is none
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.plan is None or (self.plan.fits and self.plan.meets_budget()))

    def line(self) -> str:
        if self.error is not None:
            return f"{self.nodeid}  [{self.profile}] {self.size}: ERROR {self.error}"
        budget = ""
        if self.plan.vram_gb_max is not None:
            budget = f", budget {self.plan.vram_gb_max:g} GB " + ("ok" if self.plan.meets_budget() else "EXCEEDED")
        return f"{self.nodeid}  [{self.profile}] {self.size}: {self.plan.envelope_line()}{budget}"

    def to_dict(self) -> dict[str, Any]:
        return {"nodeid": self.nodeid, "profile": self.profile, "size": self.size, "ok": self.ok,
                "plan": None if self.plan is None else self.plan.to_dict(), "error": self.error}


class _Grab:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.config: Any = None

    def pytest_collection_finish(self, session: Any) -> None:
        self.items = list(session.items)
        self.config = session.config


def collect_envelopes(args: Sequence[str], *, free_gb: float | None = None, model: str | None = None,
                      margin_gb: float | None = None) -> tuple[int, list[ItemEnvelope]]:
    """(pytest's collection exit code, one envelope per rendered item)."""
    import pytest

    from pytest_ltx.collect import LtxItem
    from pytest_ltx.render import RenderError
    from pytest_ltx.render.gpu import free_memory_gb, pin_device
    from pytest_ltx.render.plan import choose, shape_of, sizes_for
    from pytest_ltx.session import get_session

    grab = _Grab()
    argv = [*args, "--collect-only", "-q", "-p", "no:cacheprovider", *(["--ltx-model", model] if model else [])]
    with contextlib.redirect_stdout(io.StringIO()):
        rc = int(pytest.main(argv, plugins=[grab]))
    if grab.config is None:
        return rc, []
    session = get_session(grab.config)
    out: list[ItemEnvelope] = []
    for item in grab.items:
        if not isinstance(item, LtxItem) or item.spec.source_kind.value != "render":
            continue
        c = item.spec.clip
        name = model or c.model
        size = f"{item.spec.clip.width}x{item.spec.clip.height}x{item.spec.clip.frames}"
        try:
            from pytest_ltx.models import resolve_model_dir

            profile = session.profile(name)
            req = item.spec.to_render_request(profile.name)
            dtype = profile.dtype if profile.dtype != "auto" else "bfloat16"  # what it needs on a GPU
            sizes = sizes_for(resolve_model_dir(profile), dtype)
            free = free_gb
            if free is None:
                import torch

                if torch.cuda.is_available():
                    dev = pin_device(profile.device if profile.device != "cpu" else "cuda", True,
                                     torch.cuda.device_count())
                    free = free_memory_gb(dev if dev.startswith("cuda") else "cuda")
            budget = c.expect.budget.vram_gb_max if c.expect is not None and c.expect.budget is not None else None
            plan = choose(sizes, shape_of(req, max_sequence_length=profile.max_sequence_length),
                          start=profile.offload, vae_tiling=True if profile.vae_tiling is None else profile.vae_tiling,
                          free_gb=free, vram_gb_max=budget,
                          margin_gb=margin_gb if margin_gb is not None else session.settings.vram_margin,
                          dtype=dtype)
            out.append(ItemEnvelope(item.nodeid, profile.name, size, plan))
        except (RenderError, ValueError, OSError) as e:
            out.append(ItemEnvelope(item.nodeid, name, size, None, error=str(e)))
    return rc, out
