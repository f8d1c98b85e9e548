"""What one item's pipeline may use: the settings, the stores, the model profiles and renderers, a
scratch folder. Built once per session (``LtxSession.item_context()``) or by hand in a unit test — never
the session itself, so each step can be run and tested alone."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from pytest_ltx.baseline import BaselineStore
    from pytest_ltx.cache import RenderCache
    from pytest_ltx.evalcache import EvaluationCache
    from pytest_ltx.model_identity import ModelIdentity
    from pytest_ltx.models import ModelProfile
    from pytest_ltx.options import Settings
    from pytest_ltx.render.base import Renderer

__all__ = ["ItemContext", "ModelSource", "ProjectModels", "Scratch", "Stores"]


class ModelSource(Protocol):
    """Where an item's model profile, its identity and the CLIP model come from."""

    def profile(self, name: str | None, *, device: str | None = None) -> "ModelProfile": ...

    def identity(self, profile: "ModelProfile") -> "ModelIdentity": ...

    def clip_profile(self) -> Any: ...


class ProjectModels:
    """The project's model profiles (``[tool.pytest-ltx.models]`` + built-ins), each identity computed
    once per session (digests are cached machine-wide), and the CLIP model of ``[tool.pytest-ltx.clip]``."""

    def __init__(self, rootdir: Path) -> None:
        self.rootdir = Path(rootdir)
        self._profiles: dict[str, ModelProfile] | None = None
        self._identities: dict[Any, ModelIdentity] = {}
        self._clip: tuple[Any] | None = None

    def profiles(self) -> dict[str, "ModelProfile"]:
        if self._profiles is None:
            from pytest_ltx.models import ProfileError, load_profiles
            from pytest_ltx.render import RenderError

            try:
                self._profiles = load_profiles(self.rootdir)
            except ProfileError as e:  # configuration, not a clip: an error on each item that renders
                raise RenderError(f"invalid model profile configuration: {e}") from None
        return self._profiles

    def profile(self, name: str | None, *, device: str | None = None) -> "ModelProfile":
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
        if profile not in self._identities:
            from pytest_ltx.models import identity

            self._identities[profile] = identity(profile)
        return self._identities[profile]

    def clip_profile(self) -> Any:
        """None when not configured: CLIP checks then fail with a message saying how to provide weights."""
        if self._clip is None:
            from pytest_ltx.metrics.clip_score import profile_from_pyproject

            self._clip = (profile_from_pyproject(self.rootdir),)
        return self._clip[0]


class Stores:
    """The render cache, the evaluation cache and the baseline store, each opened on first use (opening
    the baseline store rolls back a killed flush: only a run that uses it should). Pass instances to use
    those instead (tests)."""

    def __init__(self, settings: "Settings", *, renders: "RenderCache | None" = None,
                 evaluations: "EvaluationCache | None" = None, baselines: "BaselineStore | None" = None) -> None:
        self.settings = settings
        self._renders = renders
        self._evaluations = evaluations
        self._baselines = baselines

    @property
    def renders(self) -> "RenderCache":
        if self._renders is None:
            from pytest_ltx.cache import RemoteStore, RenderCache

            st = self.settings
            # with a shared URL the local folder is a working copy of it (the rootdir's .ltx-cache)
            local = st.cache_dir if st.cache_url is None else st.rootdir / ".ltx-cache"
            self._renders = RenderCache(local, fence=st.rootdir, max_bytes=int(st.cache_max_gb * 1e9),
                                        remote=RemoteStore(st.cache_url) if st.cache_url else None)
        return self._renders

    @property
    def evaluations(self) -> "EvaluationCache":
        """Metric results and determinism proofs, beside the render cache."""
        if self._evaluations is None:
            from pytest_ltx.evalcache import EvaluationCache

            self._evaluations = EvaluationCache(self.settings.cache_dir)
        return self._evaluations

    @property
    def baselines(self) -> "BaselineStore":
        if self._baselines is None:
            from pytest_ltx.baseline import BaselineStore

            # fence: a symlinked baselines/ pointing out of the project is neither read nor written
            self._baselines = BaselineStore(self.settings.baselines, fence=self.settings.rootdir)
        return self._baselines


class Scratch:
    """A temporary folder made on first use and removed by :meth:`close` (or a given folder, kept)."""

    def __init__(self, path: Path | None = None) -> None:
        self._given = path
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __call__(self) -> Path:
        if self._given is not None:
            return self._given
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pytest-ltx-")
        return Path(self._tmp.name)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _get_renderer(profile: "ModelProfile") -> "Renderer":
    from pytest_ltx.render.pool import get_renderer

    return get_renderer(profile)


@dataclass(frozen=True)
class ItemContext:
    """Everything an item's pipeline (``item/pipeline.py``) and its steps (``runner``, ``golden``) read
    or write besides the item itself."""

    settings: "Settings"
    stores: Stores
    models: ModelSource
    #: a temporary folder (calibration renders, test cards being drawn)
    scratch: Callable[[], Path]
    #: the renderer of a model profile (one pipeline per profile per process)
    renderer_for: Callable[["ModelProfile"], "Renderer"] = field(default=_get_renderer)

    @classmethod
    def for_project(cls, settings: "Settings", **overrides: Any) -> "ItemContext":
        """The context of a project with these settings: its stores, its model profiles, a scratch folder
        (``overrides`` replace any of them)."""
        kw: dict[str, Any] = {"stores": Stores(settings), "models": ProjectModels(settings.rootdir),
                              "scratch": Scratch()}
        kw.update(overrides)
        return cls(settings=settings, **kw)

    def report_clip_path(self, nodeid: str) -> Path:
        """Where a clip that lives nowhere else (a drawn test card) is kept for the report: in the item's
        media folder, named from a hash of its node id (unique across spec folders and xdist workers)."""
        from pytest_ltx.report.media import item_media_dir

        d = item_media_dir(self.settings.report_dir, nodeid)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:  # a report folder that refuses files must not stop the card: draw it aside
            return self.scratch() / f"{d.name}.mp4"
        return d / "clip.mp4"
