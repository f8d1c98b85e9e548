"""Per-session state of the plugin, kept in ``config.stash`` (never on private config attributes).

On an xdist worker it renders and evaluates; on the controller (or a plain run) it also gathers the
item results and queued baseline records shipped on test reports, and writes them out once at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_ltx.item.context import ItemContext, ProjectModels, Scratch, Stores
from pytest_ltx.item.key import ItemKey
from pytest_ltx.options import Settings, settings
from pytest_ltx.report.results import ItemResult

if TYPE_CHECKING:
    from pytest_ltx.baseline import BaselineStore
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.models import ModelProfile

__all__ = ["LtxSession", "SESSION_KEY", "get_session"]

SESSION_KEY = pytest.StashKey["LtxSession"]()


class LtxSession:
    """The session's state: settings, what collection saw, the results and baseline records gathered
    on the controller. An item never receives it: it gets :meth:`item_context` (settings, stores,
    models, scratch folder)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = settings(config)
        from pytest_ltx.limits import set_limits

        set_limits(self.settings.limits)
        self.is_worker = hasattr(config, "workerinput")
        self.models = ProjectModels(self.settings.rootdir)
        self.stores = Stores(self.settings)
        self.scratch = Scratch()
        self._context: ItemContext | None = None
        self.results: list[ItemResult] = []
        #: baseline records (JSON payloads) queued by items for writing at session end
        self.baseline_payloads: list[dict[str, Any]] = []
        #: set at the end of collection (collect.note_collection): was every item of the collected spec
        #: files selected, and which items / spec files were collected — what "unused baseline" means
        self.whole_suite = False
        self.collected_keys: set[ItemKey] = set()
        #: leftovers of killed runs removed at session start (cache staging, .part files)
        self.swept: list[Path] = [] if self.is_worker else self.sweep_stale()

    def item_context(self) -> ItemContext:
        """What every item's pipeline gets (one per session: the stores and models are shared)."""
        if self._context is None:
            self._context = ItemContext(settings=self.settings, stores=self.stores, models=self.models,
                                        scratch=self.scratch)
        return self._context

    @property
    def collected_item_keys(self) -> set[str]:
        """The baseline keys of the collected items."""
        return {k.baseline for k in self.collected_keys}

    @property
    def collected_specs(self) -> set[str]:
        """The spec files (rootdir-relative) of the collected items."""
        return {k.spec for k in self.collected_keys}

    def sweep_stale(self) -> list[Path]:
        """Remove what a killed run left: render-cache staging folders and ``.part`` files in the cache and
        the report folder, older than this session (less a margin for a concurrent session's live
        writes). Baseline-store leftovers are rolled back when the store is opened."""
        from pytest_ltx.storage import stale_before, sweep_stale

        before = stale_before()
        removed = self.cache.sweep(before)
        removed += sweep_stale(self.settings.report_dir, (".part",), before)
        return removed

    # -- spec resolution ------------------------------------------------------------------------------
    def project(self) -> Any:
        """What spec files are resolved against: the root, the presets, the run's preset and model."""
        if getattr(self, "_project", None) is None:
            from pytest_ltx.spec.presets import Project, load_presets

            st = self.settings
            self._project = Project(root=st.rootdir, presets=load_presets(st.rootdir, st.specs),
                                    run_preset=st.preset, run_model=st.model)
        return self._project

    def check_run_preset(self) -> None:
        """``--ltx-preset NAME`` must name a preset: a typo would otherwise run the wrong tier."""
        name = self.settings.preset
        if name is None:
            return
        presets = self.project().presets
        if name not in presets.presets:
            import difflib

            close = difflib.get_close_matches(name, presets.names(), n=1)
            detail = "; ".join(str(e) for e in presets.errors)
            raise pytest.UsageError(
                f"pytest-ltx: --ltx-preset {name!r} is not a preset (known: {', '.join(presets.names()) or 'none'}"
                f"{f'; did you mean {close[0]!r}?' if close else ''}). Presets live in "
                f"<specs>/presets.yaml or [tool.pytest-ltx.presets]" + (f". Problems: {detail}" if detail else ""))

    # -- models (see item/context.ProjectModels) ------------------------------------------------------
    def profile(self, name: str | None, *, device: str | None = None) -> "ModelProfile":
        return self.models.profile(name, device=device)

    def fingerprint(self, profile: "ModelProfile") -> str:
        return self.models.identity(profile).fingerprint

    # -- storage (see item/context.Stores) ------------------------------------------------------------
    @property
    def cache(self) -> "RenderCache":
        return self.stores.renders

    @property
    def store(self) -> "BaselineStore":
        return self.stores.baselines

    def close(self) -> None:
        self.scratch.close()


def get_session(config: pytest.Config) -> LtxSession:
    return config.stash[SESSION_KEY]
