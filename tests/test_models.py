"""Model profiles: pyproject parsing, error messages, weight location and fingerprints (no model runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_ltx.models import (
    TINY_PROFILE,
    ModelKind,
    ModelNotFoundError,
    ModelProfile,
    Offload,
    ProfileError,
    fingerprint,
    load_profiles,
    load_tool_config,
    resolve_model_dir,
)
from pytest_ltx.render.base import RenderError


def _pyproject(root: Path, body: str) -> Path:
    (root / "pyproject.toml").write_text(body)
    return root


def test_no_pyproject_gives_only_tiny(tmp_path: Path) -> None:
    profiles = load_profiles(tmp_path)
    assert profiles == {"tiny": TINY_PROFILE}
    assert load_tool_config(tmp_path) == {}


def test_profiles_parsed_from_pyproject(tmp_path: Path) -> None:
    _pyproject(
        tmp_path,
        """
[tool.pytest-ltx]
report = "ltx-report"

[tool.pytest-ltx.models.ltx23]
path = "weights/LTX-2.3"
dtype = "bfloat16"
device = "cuda:1"
offload = "model"
vae_tiling = false
variant = "2.3"
max_sequence_length = 256
threads = 4

[tool.pytest-ltx.models.ltx2-hub]
hub_id = "Lightricks/LTX-2"
revision = "abc123"
variant = "2.0"

[tool.pytest-ltx.models.tiny]
threads = 2
""",
    )
    profiles = load_profiles(tmp_path)
    assert set(profiles) == {"tiny", "ltx23", "ltx2-hub"}
    p = profiles["ltx23"]
    assert p.kind is ModelKind.LOCAL
    assert p.path == tmp_path / "weights/LTX-2.3"  # relative paths are relative to the rootdir
    assert (p.dtype, p.device, p.offload, p.vae_tiling, p.max_sequence_length, p.threads) == (
        "bfloat16", "cuda:1", Offload.MODEL, False, 256, 4)
    assert p.variant == "2.3" and p.recipe is None and p.loras == () and p.upsampler is None
    h = profiles["ltx2-hub"]
    assert (h.kind, h.hub_id, h.revision) == (ModelKind.HUB, "Lightricks/LTX-2", "abc123")
    assert h.variant == "2.0"
    t = profiles["tiny"]  # overriding placement keeps it the embedded model
    assert t.kind is ModelKind.TINY and t.threads == 2 and t.stg_blocks == (1,)
    assert load_tool_config(tmp_path)["report"] == "ltx-report"
    json.dumps(p.to_dict())
    assert hash(p) == hash(load_profiles(tmp_path)["ltx23"])  # frozen + hashable: memo key


def test_absolute_and_home_paths_kept(tmp_path: Path) -> None:
    _pyproject(tmp_path, '[tool.pytest-ltx.models.a]\npath = "/models/x"\n[tool.pytest-ltx.models.b]\npath = "~/m"\n')
    ps = load_profiles(tmp_path)
    assert ps["a"].path == Path("/models/x")
    assert ps["b"].path == Path.home() / "m"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ('path = "/m"\nweights = "x"', "weights", "unknown field"),
        ('path = "/m"\ndtype = "fp8"', "dtype", "float32"),
        ('path = "/m"\ndevice = "gpu"', "device", "cuda:N"),
        ('path = "/m"\ndevice = "cuda:x"', "device", "cuda:N"),
        ('path = "/m"\noffload = "yes"', "offload", "sequential"),
        ('path = "/m"\nvae_tiling = "on"', "vae_tiling", "true or false"),
        ('path = "/m"\nvariant = "2.4"', "variant", "2.5"),
        ('path = "/m"\nrecipe = "fast"', "recipe", "two-stage"),
        ('path = "/m"\nloras = "a.safetensors"', "loras", "list of"),
        ('path = "/m"\nloras = [{path = "a.safetensors", scale = "big"}]', "loras[0]", "scale must be a number"),
        ('path = "/m"\nloras = [{path = "a.safetensors", weight = 1}]', "loras[0]", "unknown key 'weight'"),
        ('path = "/m"\nloras = ["x/a.safetensors", "y/a.safetensors"]', "loras", "share the adapter name 'a'"),
        ('path = "/m"\ndistilled = "yes"', "distilled", "true or false"),
        ('path = "/m"\nsteps = 0', "steps", "1..200"),
        ('path = "/m"\nupsampler = 3', "upsampler", "latent upsampler folder"),
        ('path = "/m"\nthreads = 0', "threads", ">= 1"),
        ('path = "/m"\nmax_sequence_length = "long"', "max_sequence_length", "integer"),
        ('path = "/m"\nstg_blocks = []', "stg_blocks", "non-empty list"),
        ('dtype = "float32"', "path", "'path'"),
        ('kind = "local"', "path", "kind 'local' needs a path"),
        ('kind = "hub"', "hub_id", "hub id"),
        ('kind = "cloud"\npath = "/m"', "kind", "must be one of"),
        ("path = 3", "path", "non-empty string"),
        ('kind = "tiny"\npath = "/m"', "path", "takes no weights"),
    ],
)
def test_profile_errors_name_file_profile_and_field(tmp_path: Path, body: str, field: str, fragment: str) -> None:
    _pyproject(tmp_path, f"[tool.pytest-ltx.models.mine]\n{body}\n")
    with pytest.raises(ProfileError) as ei:
        load_profiles(tmp_path)
    msg = str(ei.value)
    assert "pyproject.toml" in msg
    assert "[tool.pytest-ltx.models.mine]" in msg
    assert f"field '{field}'" in msg
    assert fragment in msg


def test_models_must_be_a_table_and_toml_must_parse(tmp_path: Path) -> None:
    _pyproject(tmp_path, '[tool.pytest-ltx]\nmodels = "tiny"\n')
    with pytest.raises(ProfileError, match="must be a table"):
        load_profiles(tmp_path)
    _pyproject(tmp_path, "[tool.pytest-ltx\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profiles(tmp_path)


# ------------------------------------------------------------------------------- locating the weights


def test_missing_folder_says_how_to_provide_the_model(tmp_path: Path) -> None:
    p = ModelProfile(name="ltx23", kind=ModelKind.LOCAL, path=tmp_path / "nope")
    with pytest.raises(ModelNotFoundError) as ei:
        resolve_model_dir(p)
    msg = str(ei.value)
    assert "'ltx23'" in msg and str(tmp_path / "nope") in msg and "does not exist" in msg
    assert "[tool.pytest-ltx.models.ltx23]" in msg and "path =" in msg
    assert "hf download diffusers/LTX-2.3-Diffusers --local-dir" in msg and "huggingface-cli" not in msg
    assert isinstance(ei.value, RenderError)  # the plugin reports it as an infra error


def test_folder_without_model_index(tmp_path: Path) -> None:
    (tmp_path / "transformer").mkdir()
    p = ModelProfile(name="x", kind=ModelKind.LOCAL, path=tmp_path, variant="2.0")
    with pytest.raises(ModelNotFoundError, match="no model_index.json") as ei:
        fingerprint(p)
    assert "hf download Lightricks/LTX-2 " in str(ei.value)


def test_hub_id_only_from_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    p = ModelProfile(name="hub", kind=ModelKind.HUB, hub_id="Lightricks/LTX-2", revision="main")
    with pytest.raises(ModelNotFoundError) as ei:
        resolve_model_dir(p)
    msg = str(ei.value)
    assert "not in the local Hugging Face cache" in msg and "never downloads" in msg
    assert "Lightricks/LTX-2@main" in msg


def test_profile_to_dict_round_trips_through_json() -> None:
    d = TINY_PROFILE.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "tiny" and d["stg_blocks"] == [1] and d["threads"] == 1
