"""CLIP on keyframes: embeddings, prompt adherence, frame-to-frame consistency — a pure function of the clip.

Per keyframe (the shared sampling policy, :mod:`pytest_ltx.metrics.sampling`), with its source frame and time:

- **embedding** — the L2-normalised image embedding; a golden baseline keeps them instead of the video.
- **prompt score** — CLIPScore = 2.5 · max(cos(text, image), 0) (Hessel et al. 2021), and the raw cosine.
  Text–video CLIPSIM of recent models sits in 0.29–0.32, so gate *drops against a baseline*, not absolutes.
- **consistency** — cosine between consecutive keyframes (a scene that changes identity mid-clip dips).

Nothing here looks at a baseline: the per-keyframe cosine to the golden embeddings and the paired
prompt-score drop are measured by :mod:`pytest_ltx.baseline` (one keyframe alignment for every comparison).

Weights are always local: ``open_clip.create_model_and_transforms(arch, pretrained=<file>)``. Nothing is
downloaded unless a profile says ``allow_network = true`` (then an open_clip hub tag is accepted). The
built-in ``tiny-random`` profile builds a tiny CLIP with seeded *random* weights: it exercises exactly the
loading and scoring path real weights take, but its numbers mean nothing about the picture (prompt
cosines ≈ 0). It is for tests and for plumbing checks — never evidence that a clip matches its prompt.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

from pytest_ltx.metrics.sampling import sample_indices
from pytest_ltx.stream import KeyframeConsumer, StreamFrame, StreamInfo

if TYPE_CHECKING:
    from pytest_ltx.media import Clip

__all__ = [
    "ClipConsumer",
    "TINY_RANDOM",
    "ClipModelError",
    "ClipModelProfile",
    "LoadedClipModel",
    "ClipKeyframe",
    "ClipSimilarityResult",
    "analyze",
    "clip_home",
    "ensure_tiny_random",
    "load_clip_model",
    "profile_from_pyproject",
    "resolve_profile",
    "tiny_config",
    "tiny_random_profile",
]

#: name of the built-in plumbing-only profile (random weights, see the module docstring)
TINY_RANDOM = "tiny-random"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
_TINY_ARCH = "pytest-ltx-tiny-random"
#: embed 128; vision 2 layers × 128 wide, patch 32 at 224 px; text 2 layers × 128 wide: 7.6 M params, 30 MB
_TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}

_HOW_TO = (
    "Provide local CLIP weights in pyproject.toml:\n"
    "    [tool.pytest-ltx.clip]\n"
    "    arch = \"ViT-B-32\"                       # an open_clip model name\n"
    "    weights = \"/models/clip/ViT-B-32.safetensors\"  # a local file (.safetensors preferred)\n"
    "(or `allow_network = true` with an open_clip tag such as weights = \"laion2b_s34b_b79k\"), "
    "or `profile = \"tiny-random\"` there for the plumbing-only random model."
)


class ClipModelError(RuntimeError):
    """CLIP weights are missing, refused (pickle) or unusable; the message says how to provide them."""


def clip_home() -> Path:
    """Where the tiny random CLIP is cached: ``$PYTEST_LTX_HOME/clip`` or ``~/.cache/pytest-ltx/clip``."""
    from pytest_ltx.model_identity import pytest_ltx_home

    return pytest_ltx_home() / "clip"


@dataclass(frozen=True)
class ClipModelProfile:
    """Which CLIP to load and from where. Frozen and hashable: the per-process model cache is keyed by it.

    ``weights`` is a local file (``.safetensors`` preferred). Pickle checkpoints (``.pt/.pth/.bin/.ckpt``)
    are refused unless they sit in a ``trusted_dirs`` folder (or the pytest-ltx cache) or
    ``allow_pickle`` is set: open_clip loads them with ``weights_only=True``, but a file from the
    internet still should not be unpickled by a CI job by default. ``config`` is an open_clip model JSON
    registered under ``arch`` (for architectures open_clip does not ship). With ``allow_network`` a hub
    tag is accepted for ``weights``; otherwise the hub is switched off while loading.
    """

    arch: str
    weights: str
    config: str | None = None
    allow_network: bool = False
    allow_pickle: bool = False
    trusted_dirs: tuple[str, ...] = ()
    #: a label for reports and baselines' model key
    name: str = ""
    #: True for random weights: scores prove plumbing only
    random_weights: bool = False

    _KEYS = ("arch", "weights", "config", "allow_network", "allow_pickle", "trusted_dirs", "name")

    @classmethod
    def from_config(cls, table: Mapping[str, Any], root: os.PathLike[str] | str | None = None) -> "ClipModelProfile":
        """Build from the ``[tool.pytest-ltx.clip]`` table; relative paths are taken from ``root``.

        ``{"profile": "tiny-random"}`` (or ``weights = "tiny-random"``) selects the built-in random model.
        """
        t = dict(table)
        if t.get("profile") == TINY_RANDOM or t.get("weights") == TINY_RANDOM:
            return tiny_random_profile()
        unknown = sorted(set(t) - set(cls._KEYS) - {"profile"})
        if unknown:
            raise ClipModelError(f"[tool.pytest-ltx.clip]: unknown key(s) {unknown}; known: {list(cls._KEYS)}")
        for key in ("arch", "weights"):
            if not isinstance(t.get(key), str) or not t[key]:
                raise ClipModelError(f"[tool.pytest-ltx.clip]: '{key}' is required (a string).\n{_HOW_TO}")

        def _path(v: str) -> str:
            p = Path(v).expanduser()
            if not p.is_absolute() and root is not None:
                p = Path(root) / p
            return str(p)

        weights = t["weights"]
        looks_like_path = os.sep in weights or "/" in weights or Path(weights).suffix != ""
        return cls(
            arch=t["arch"],
            weights=_path(weights) if looks_like_path else weights,
            config=_path(t["config"]) if t.get("config") else None,
            allow_network=_strict_bool(t, "allow_network"),
            allow_pickle=_strict_bool(t, "allow_pickle"),
            trusted_dirs=tuple(_trusted_dir(_path(d), d) for d in _str_list(t, "trusted_dirs")),
            name=str(t.get("name") or f"{t['arch']}:{Path(weights).name}"),
        )

    @property
    def label(self) -> str:
        return self.name or f"{self.arch}:{Path(self.weights).name}"

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "weights": Path(self.weights).name, "label": self.label,
                "random_weights": self.random_weights}


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _strict_bool(t: Mapping[str, Any], key: str) -> bool:
    """A boolean as TOML or an ini file writes it. ``bool("false")`` is True, so strings are parsed:
    true/false/1/0/yes/no (any case); anything else is an error naming the key."""
    v = t.get(key, False)
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
        return v.strip().lower() in _TRUE
    raise ClipModelError(f"[tool.pytest-ltx.clip]: {key} must be true or false (or 1/0, yes/no), got {v!r}")


def _str_list(t: Mapping[str, Any], key: str) -> list[str]:
    v = t.get(key, ())
    if isinstance(v, str):  # one folder written without brackets: one item, not one per character
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        raise ClipModelError(f"[tool.pytest-ltx.clip]: {key} must be a list of folder paths, got {v!r}")
    return list(v)


def _trusted_dir(path: str, written: str) -> str:
    """A trusted folder is one the user vouches for; ``/``, the home folder or a folder above it would
    trust every pickle the CI user can read."""
    p = Path(path).resolve()
    home = Path.home().resolve()
    if p == Path(p.anchor) or p == home or p in home.parents:
        what = "the file-system root" if p == Path(p.anchor) else "the home folder" if p == home else "above the home folder"
        raise ClipModelError(
            f"[tool.pytest-ltx.clip]: trusted_dirs entry {written!r} is {what} ({p}): that would trust every file "
            "on the machine; name the folder that holds the checkpoints"
        )
    return str(p)


def weights_format(path: Path) -> str:
    """What a weights file *is*, by content (never by name): ``"safetensors"`` (a JSON header, no code),
    ``"torch-zip"`` (torch.save's zip with a pickle inside), ``"pickle"``, or ``"unknown"``. Only
    safetensors is data-only; everything else may run code when unpickled."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
            if len(head) >= 9:
                n = int.from_bytes(head[:8], "little")
                if 2 <= n <= size - 8 and head[8:9] == b"{":
                    return "safetensors"
    except OSError:
        return "unknown"
    if head[:4] == b"PK\x03\x04":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                if any(n.endswith(".pkl") for n in z.namelist()):
                    return "torch-zip"
        except (zipfile.BadZipFile, OSError):
            pass
        return "unknown"
    if head[:1] == b"\x80" and head[1:2] and 2 <= head[1] <= 5:
        return "pickle"
    return "unknown"


def tiny_config() -> dict[str, Any]:
    """A copy of the tiny random CLIP's open_clip model config (write it to JSON for ``config =``)."""
    return json.loads(json.dumps(_TINY_CONFIG))


def tiny_random_profile(seed: int = 0) -> ClipModelProfile:
    """The built-in plumbing-only profile (built on first use by :func:`load_clip_model`)."""
    return ClipModelProfile(arch=_TINY_ARCH, weights=f"{TINY_RANDOM}:{seed}", name=TINY_RANDOM, random_weights=True)


def profile_from_pyproject(rootdir: os.PathLike[str] | str) -> ClipModelProfile | None:
    """The ``[tool.pytest-ltx.clip]`` profile of ``rootdir/pyproject.toml`` (paths relative to it), or None."""
    from pytest_ltx.models import load_tool_config

    table = load_tool_config(Path(rootdir)).get("clip")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ClipModelError(f"{Path(rootdir) / 'pyproject.toml'}: [tool.pytest-ltx.clip] must be a table")
    return ClipModelProfile.from_config(table, root=rootdir)


def resolve_profile(value: "ClipModelProfile | str | Mapping[str, Any] | None",
                    root: os.PathLike[str] | str | None = None) -> ClipModelProfile:
    """A profile from what a caller holds: a profile, ``"tiny-random"``, or a pyproject table."""
    if isinstance(value, ClipModelProfile):
        return value
    if value == TINY_RANDOM:
        return tiny_random_profile()
    if isinstance(value, Mapping):
        return ClipModelProfile.from_config(value, root=root)
    if value is None:
        raise ClipModelError(f"No CLIP model is configured (real CLIP weights cannot be downloaded here).\n{_HOW_TO}")
    raise ClipModelError(f"Not a CLIP model profile: {value!r}.\n{_HOW_TO}")


# ---- the tiny random model ------------------------------------------------------------------------------


def _tiny_key(seed: int) -> str:
    import open_clip

    blob = json.dumps({"cfg": _TINY_CONFIG, "seed": seed, "open_clip": open_clip.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _register_config(arch: str, cfg: Mapping[str, Any]) -> None:
    """Register ``cfg`` as open_clip model ``arch`` (open_clip names a config by its file stem)."""
    import open_clip

    if arch in open_clip.list_models():
        return
    # open_clip reads the file at registration and keeps the parsed config, so the folder can go at once
    with tempfile.TemporaryDirectory(prefix="pytest-ltx-clipcfg-") as d:
        (Path(d) / f"{arch}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(d)


def ensure_tiny_random(seed: int = 0, home: Path | None = None) -> Path:
    """Build (once per machine, atomically, under a file lock) the tiny random CLIP's safetensors file.

    Weights come from ``torch.manual_seed(seed)`` and are then only ever *loaded* from the file, the same
    way real weights are — so any run on any machine scores with identical weights.
    """
    from filelock import FileLock

    home = home or clip_home()
    home.mkdir(parents=True, exist_ok=True)
    path = home / f"tiny-random-{_tiny_key(seed)}.safetensors"
    if path.is_file():
        return path
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            return path
        import open_clip
        import torch
        from safetensors.torch import save_file

        _register_config(_TINY_ARCH, _TINY_CONFIG)
        with _fork_rng(torch):
            torch.manual_seed(seed)
            model = open_clip.create_model(_TINY_ARCH, pretrained=None)
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        from pytest_ltx.storage import atomic_file

        # a shared machine cache, not a secret: readable as umask allows ("best-effort", as before)
        with atomic_file(path, prefix=".tiny-random-", mode="best-effort") as tmp:
            save_file(state, str(tmp), metadata={"pytest-ltx": "tiny-random CLIP, random weights: plumbing only",
                                                 "seed": str(seed)})
    return path


@contextlib.contextmanager
def _fork_rng(torch: Any) -> Iterator[None]:
    state = torch.random.get_rng_state()
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


# ---- loading ------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoadedClipModel:
    """A loaded CLIP: model in eval mode on its device, open_clip's eval preprocess and tokenizer."""

    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    profile: ClipModelProfile

    def embed_images(self, frames: np.ndarray, batch: int = 16) -> np.ndarray:
        """uint8 RGB [K,H,W,3] → L2-normalised float32 [K,D] image embeddings."""
        import torch
        from PIL import Image

        out = []
        with torch.inference_mode():
            for s in range(0, len(frames), batch):
                x = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames[s : s + batch]])
                e = self.model.encode_image(x.to(self.device)).float()
                out.append(torch.nn.functional.normalize(e, dim=-1).cpu().numpy())
        if not out:
            return np.zeros((0, self.embed_dim), np.float32)
        return np.concatenate(out).astype(np.float32)

    def embed_tensors(self, tensors: list[Any]) -> np.ndarray:
        """Already preprocessed image tensors → L2-normalised float32 [K,D] embeddings."""
        import torch

        with torch.inference_mode():
            e = self.model.encode_image(torch.stack(tensors).to(self.device)).float()
            return torch.nn.functional.normalize(e, dim=-1).cpu().numpy().astype(np.float32)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Prompts → L2-normalised float32 [N,D] text embeddings."""
        import torch

        with torch.inference_mode():
            e = self.model.encode_text(self.tokenizer(texts).to(self.device)).float()
            return torch.nn.functional.normalize(e, dim=-1).cpu().numpy().astype(np.float32)

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.model.visual, "output_dim", None)
        return int(proj) if proj else int(self.embed_text(["x"]).shape[1])


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    if offline:
        for k in keys:
            os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_weights(profile: ClipModelProfile) -> str:
    """The ``pretrained=`` value for open_clip, after the offline and pickle policies."""
    w = profile.weights
    p = Path(w).expanduser()
    if p.is_file():
        kind = weights_format(p)  # by content: a pickle named .dat or .safetensors is still a pickle
        if kind != "safetensors" and not profile.allow_pickle:
            trusted = [Path(d).expanduser().resolve() for d in profile.trusted_dirs] + [clip_home().resolve()]
            rp = p.resolve()
            if not any(rp.is_relative_to(d) for d in trusted):
                what = {"torch-zip": "a torch.save checkpoint (a pickle inside a zip)", "pickle": "a pickle",
                        "unknown": "not a safetensors file (it may hold a pickle)"}[kind]
                raise ClipModelError(
                    f"Refusing to load pickle checkpoint {p}: its content is {what}, and pickles can run code when "
                    f"loaded. Convert it to .safetensors, put it in a trusted directory "
                    f"(trusted_dirs = [...]), or set allow_pickle = true in [tool.pytest-ltx.clip]."
                )
        return str(p)
    looks_like_path = os.sep in w or "/" in w or p.suffix.lower() in (".safetensors",) + _PICKLE_SUFFIXES
    if looks_like_path:
        raise ClipModelError(f"CLIP weights file not found: {p} (profile {profile.label}).\n{_HOW_TO}")
    if not profile.allow_network:
        raise ClipModelError(
            f"CLIP weights {w!r} for {profile.arch} are not a local file, and downloads are off "
            f"(HF_HUB_OFFLINE=1; set allow_network = true to fetch an open_clip tag).\n{_HOW_TO}"
        )
    return w


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=4)
def _load(profile: ClipModelProfile, device: str) -> LoadedClipModel:
    try:
        import open_clip
    except ImportError as e:
        raise ClipModelError(f"open_clip is not installed ({e}): pip install open-clip-torch") from None

    if profile.random_weights and profile.weights.startswith(f"{TINY_RANDOM}:"):
        seed = int(profile.weights.split(":", 1)[1])
        _register_config(_TINY_ARCH, _TINY_CONFIG)
        pretrained = str(ensure_tiny_random(seed))
    else:
        if profile.config:
            cfg_path = Path(profile.config).expanduser()
            if not cfg_path.is_file():
                raise ClipModelError(f"CLIP model config not found: {cfg_path} (profile {profile.label})")
            _register_config(profile.arch, json.loads(cfg_path.read_text()))
        pretrained = _check_weights(profile)
    if profile.arch not in open_clip.list_models():
        raise ClipModelError(
            f"Unknown open_clip architecture {profile.arch!r}: give a model config JSON (config = ...) or one of "
            f"open_clip.list_models() (e.g. ViT-B-32)."
        )
    with _hub_offline(not profile.allow_network):
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                profile.arch, pretrained=pretrained, device=device, weights_only=True
            )
        except RuntimeError as e:
            raise ClipModelError(f"Could not load CLIP {profile.label} from {pretrained}: {e}\n{_HOW_TO}") from None
        tokenizer = open_clip.get_tokenizer(profile.arch)
    model.eval()
    return LoadedClipModel(model=model, preprocess=preprocess, tokenizer=tokenizer, device=device, profile=profile)


def load_clip_model(profile: "ClipModelProfile | str | Mapping[str, Any] | None" = None,
                    device: str | None = None) -> LoadedClipModel:
    """The CLIP for ``profile``, loaded once per process (eval mode; CUDA when available)."""
    return _load(resolve_profile(profile), device or _device())


# ---- the metric ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipKeyframe:
    frame: int
    time_s: float
    prompt_cosine: float | None
    prompt_score: float | None
    #: cosine to the previous keyframe (None for the first)
    consistency: float | None

    def to_dict(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(float(x), 6)  # noqa: E731
        return {"frame": self.frame, "time_s": round(self.time_s, 4), "prompt_cosine": r(self.prompt_cosine),
                "prompt_score": r(self.prompt_score), "consistency": r(self.consistency)}


def _agg(values: list[float | None], fn) -> float | None:
    v = [x for x in values if x is not None]
    return float(fn(v)) if v else None


@dataclass(frozen=True, eq=False)
class ClipSimilarityResult:
    """Per-keyframe CLIP scores and their aggregates; ``embeddings`` go to the baseline store, not JSON."""

    keyframes: tuple[ClipKeyframe, ...]
    #: L2-normalised float32 [K,D], one row per keyframe (what a golden baseline keeps)
    embeddings: np.ndarray
    model: dict[str, Any]
    prompt: str | None = None
    sample_fps: float = 2.0

    @property
    def sampled_frames(self) -> tuple[int, ...]:
        return tuple(k.frame for k in self.keyframes)

    @property
    def random_weights(self) -> bool:
        return bool(self.model.get("random_weights"))

    def _series(self, name: str) -> list[float | None]:
        return [getattr(k, name) for k in self.keyframes]

    def aggregates(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, key in (("prompt_score", "prompt_score"), ("prompt_cosine", "prompt_cosine"),
                          ("consistency", "consistency")):
            s = self._series(key)
            out[f"{name}_mean"] = _agg(s, np.mean)
            out[f"{name}_min"] = _agg(s, np.min)
        return out

    def worst(self, name: str) -> ClipKeyframe | None:
        ks = [k for k in self.keyframes if getattr(k, name) is not None]
        return min(ks, key=lambda k: getattr(k, name)) if ks else None

    def scalars(self) -> dict[str, float | int | None]:
        return {k: None if v is None else round(v, 6) for k, v in self.aggregates().items()}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"embeddings": self.embeddings}
        scores = [k.prompt_score for k in self.keyframes]
        if scores and all(x is not None for x in scores):
            # per-keyframe prompt scores: the baseline keeps them so the gate can pair keyframe with keyframe
            out["prompt_scores"] = np.asarray(scores, np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": dict(self.model),
            "prompt": self.prompt,
            "sample_fps": self.sample_fps,
            "sampled_frames": list(self.sampled_frames),
            "keyframes": [k.to_dict() for k in self.keyframes],
            "embedding_dim": int(self.embeddings.shape[1]) if self.embeddings.ndim == 2 else None,
            "scalars": self.scalars(),
        }


def analyze(
    clip: "Clip",
    *,
    prompt: str | None = None,
    sample_fps: float = 2.0,
    profile: "ClipModelProfile | str | Mapping[str, Any] | None" = None,
    model: LoadedClipModel | None = None,
) -> ClipSimilarityResult:
    """CLIP embeddings of ``clip``'s keyframes and their scores against ``prompt``.

    ``model`` (already loaded) wins over ``profile`` (loaded once per process). Without either, this
    raises :class:`ClipModelError` explaining how to configure weights: CLIP scores from an unconfigured
    model would look like measurements and are not.
    """
    m = model or load_clip_model(profile)
    idx = sample_indices(clip.num_frames, clip.fps, sample_fps)
    emb = m.embed_images(clip.frames[idx])
    return _score(m, emb, [clip.original_index(i) for i in idx], clip.fps, prompt, sample_fps)


def _score(m: LoadedClipModel, emb: np.ndarray, frames: list[int], fps: float, prompt: str | None,
           sample_fps: float) -> ClipSimilarityResult:
    idx = frames
    cos_p: list[float | None] = [None] * len(idx)
    if prompt:
        t = m.embed_text([prompt])[0]
        cos_p = [float(x) for x in emb @ t]
    cons: list[float | None] = [None] + [float(emb[j] @ emb[j - 1]) for j in range(1, len(idx))]
    kfs = tuple(
        ClipKeyframe(
            frame=i, time_s=i / fps,
            prompt_cosine=cos_p[j], prompt_score=None if cos_p[j] is None else 2.5 * max(cos_p[j], 0.0),
            consistency=cons[j],
        )
        for j, i in enumerate(idx)
    )
    return ClipSimilarityResult(
        keyframes=kfs, embeddings=emb, model={**m.profile.to_dict(), "device": m.device},
        prompt=prompt, sample_fps=float(sample_fps),
    )


class ClipConsumer(KeyframeConsumer):
    """CLIP scores in the streaming pass: each keyframe is preprocessed (224 px tensor) as it is decoded and
    the full frame dropped; embeddings are computed in batches."""

    name = "clip_similarity"

    def __init__(self, *, prompt: str | None = None, sample_fps: float = 2.0,
                 profile: "ClipModelProfile | str | Mapping[str, Any] | None" = None,
                 model: LoadedClipModel | None = None, batch: int = 16) -> None:
        super().__init__(sample_fps)
        self.prompt = prompt
        self.profile = profile
        self._model = model
        self.batch = batch

    def config(self) -> dict[str, Any]:
        prof = self._model.profile if self._model is not None else resolve_profile(self.profile)
        d = prof.to_dict()
        w = d.get("weights")
        if isinstance(w, str) and os.path.isfile(w):  # same path, new file: a different model
            st = os.stat(w)
            d["weights_stat"] = [st.st_size, st.st_mtime_ns]
        return {"sample_fps": self.sample_fps, "prompt": self.prompt, "profile": d}

    def begin(self, info: StreamInfo) -> None:
        super().begin(info)
        self._m = self._model or load_clip_model(self.profile)
        self._pending: list[Any] = []
        self._emb: list[np.ndarray] = []
        self._info = info

    def take(self, index: int, frame: StreamFrame) -> None:
        from PIL import Image

        self._pending.append(self._m.preprocess(Image.fromarray(np.ascontiguousarray(frame.rgb()))))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._emb.append(self._m.embed_tensors(self._pending))
            self._pending = []

    def result(self, info: StreamInfo, indices: list[int]) -> ClipSimilarityResult:
        emb = np.concatenate(self._emb) if self._emb else np.zeros((0, self._m.embed_dim), np.float32)
        return _score(self._m, emb, [info.original_index(i) for i in indices], info.fps, self.prompt,
                      self.sample_fps)
