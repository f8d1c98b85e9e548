"""Per-session state of the plugin, kept in ``config.stash`` (never on private config attributes).

On an xdist worker it renders and evaluates; on the controller (or a plain run) it also gathers the
item results and queued baseline records shipped on test reports, and writes them out once at the end.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_ltx.options import Settings, settings
from pytest_ltx.report.results import ItemResult

if TYPE_CHECKING:
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.model_identity import ModelIdentity
    from pytest_ltx.evalcache import EvaluationCache
    from pytest_ltx.models import ModelProfile

__all__ = ["LtxSession", "SESSION_KEY", "get_session"]

SESSION_KEY = pytest.StashKey["LtxSession"]()


class LtxSession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = settings(config)
        from pytest_ltx.limits import set_limits

        set_limits(self.settings.limits)
        self.is_worker = hasattr(config, "workerinput")
        self._profiles: dict[str, ModelProfile] | None = None
        self._identities: dict[Any, "ModelIdentity"] = {}
        self._cache: RenderCache | None = None
        self._eval_cache: EvaluationCache | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._store: Any = None
        self.results: list[ItemResult] = []
        #: baseline records (JSON payloads) queued by items for writing at session end
        self.baseline_payloads: list[dict[str, Any]] = []
        #: set at the end of collection (collect.note_collection): was every item of the collected spec
        #: files selected, and which items / spec files were collected — what "unused baseline" means
        self.whole_suite = False
        self.collected_item_keys: set[str] = set()
        self.collected_specs: set[str] = set()
        #: leftovers of killed runs removed at session start (cache staging, .part files)
        self.swept: list[Path] = [] if self.is_worker else self.sweep_stale()

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

    # -- models -------------------------------------------------------------------------------------
    def profiles(self) -> dict[str, "ModelProfile"]:
        if self._profiles is None:
            from pytest_ltx.models import ProfileError, load_profiles
            from pytest_ltx.render import RenderError

            try:
                self._profiles = load_profiles(self.settings.rootdir)
            except ProfileError as e:  # configuration, not a clip: an error on each item that renders
                raise RenderError(f"invalid model profile configuration: {e}") from None
        return self._profiles

    def profile(self, name: str, *, device: str | None = None) -> "ModelProfile":
        from pytest_ltx.render import RenderError

        profiles = self.profiles()
        if name not in profiles:
            known = ", ".join(sorted(profiles))
            raise RenderError(
                f"unknown model profile {name!r} (known: {known}). Declare it in pyproject.toml as "
                f"[tool.pytest-ltx.models.{name}] with `path = \"/local/diffusers/folder\"`, or use `model: tiny`."
            )
        p = profiles[name]
        return replace(p, device=device) if device else p

    def identity(self, profile: "ModelProfile") -> "ModelIdentity":
        """The model identity of ``profile`` (computed once per session; digests cached machine-wide)."""
        if profile not in self._identities:
            from pytest_ltx.models import identity

            self._identities[profile] = identity(profile)
        return self._identities[profile]

    def fingerprint(self, profile: "ModelProfile") -> str:
        return self.identity(profile).fingerprint

    def clip_profile(self) -> Any:
        """The CLIP model from ``[tool.pytest-ltx.clip]`` (None when not configured: CLIP checks then
        fail with a message saying how to provide weights)."""
        if not hasattr(self, "_clip_profile"):
            from pytest_ltx.metrics.clip_score import profile_from_pyproject

            self._clip_profile = profile_from_pyproject(self.settings.rootdir)
        return self._clip_profile

    # -- storage ------------------------------------------------------------------------------------
    @property
    def cache(self) -> "RenderCache":
        if self._cache is None:
            from pytest_ltx.cache import RemoteStore, RenderCache

            st = self.settings
            url = getattr(st, "cache_url", None)
            # with a shared URL the local folder is a working copy of it (the rootdir's .ltx-cache)
            local = st.cache_dir if url is None else st.rootdir / ".ltx-cache"
            self._cache = RenderCache(local, fence=st.rootdir, max_bytes=int(getattr(st, "cache_max_gb", 0) * 1e9),
                                      remote=RemoteStore(url) if url else None)
        return self._cache

    @property
    def eval_cache(self) -> "EvaluationCache":
        """Metric results and determinism proofs, beside the render cache."""
        if self._eval_cache is None:
            from pytest_ltx.evalcache import EvaluationCache

            self._eval_cache = EvaluationCache(self.settings.cache_dir)
        return self._eval_cache

    @property
    def store(self) -> Any:
        if self._store is None:
            from pytest_ltx.baseline import BaselineStore

            # fence: a symlinked baselines/ pointing out of the project is neither read nor written
            self._store = BaselineStore(self.settings.baselines, fence=self.settings.rootdir)
        return self._store

    def scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="pytest-ltx-")
        return Path(self._scratch.name)

    def report_clip_path(self, nodeid: str) -> Path:
        """Where a clip that lives nowhere else (a drawn test card) is kept for the report: in the item's
        media folder, named from a hash of its node id (unique across spec folders and xdist workers)."""
        from pytest_ltx.report.media import item_media_dir

        d = item_media_dir(self.settings.report_dir, nodeid)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:  # a report folder that refuses files must not stop the card: draw it aside
            return self.scratch_dir() / f"{d.name}.mp4"
        return d / "clip.mp4"

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def get_session(config: pytest.Config) -> LtxSession:
    return config.stash[SESSION_KEY]
