"""The metric-family registry (:mod:`pytest_ltx.families`): a third-party family added by ONE small module
plus an entry point, proven end to end on test cards with known truth (validated in specs, computed,
checked, in results.json, through the whole golden-baseline lifecycle); and the registry's own rules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from pytest_ltx import families
from pytest_ltx.families import FamilyError, FamilyRegistry, MetricFamily
from pytest_ltx.testing import check_family_lifecycle

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")

#: the whole third-party package: one module (its entry point names FAMILY)
LUMA_MODULE = '''
"""A third-party metric family: the clip's mean luma (BT.601, 0-255), with bounds."""
from pydantic import BaseModel, ConfigDict, Field

from pytest_ltx.families import MetricFamily
from pytest_ltx.outcome import Outcome, Status
from pytest_ltx.stream import Consumer


class LumaExpect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float = Field(0.0, ge=0, le=255)
    max: float = Field(255.0, ge=0, le=255)


class LumaResult:
    def __init__(self, mean):
        self.mean = mean

    def to_dict(self):
        return {"mean": self.mean}


class LumaConsumer(Consumer):
    name = "mean_luma"

    def begin(self, info):
        self.means = []

    def feed(self, frame):
        self.means.append(float(frame.gray().mean()))

    def finish(self, info):
        return LumaResult(sum(self.means) / max(1, len(self.means)))


def check(result, expect, context):
    ok = expect.min <= result.mean <= expect.max
    return [Outcome("mean_luma.range", Status.PASSED if ok else Status.FAILED,
                    f"mean luma {result.mean:.1f}, allowed {expect.min:g}-{expect.max:g}")]


FAMILY = MetricFamily("mean_luma", lambda expect, context: LumaConsumer(), expect_key="mean_luma",
                      expect_model=LumaExpect, check=check, scalars=lambda r: {"mean": r.mean},
                      summary=lambda d: f"mean_luma: {d['mean']:.1f}")
'''

CARD = {"width": 64, "height": 64, "frames": 9, "fps": 24, "seed": 1}
#: the same scene with every frame after the first at half brightness
DIM = {**CARD, "exposure": [{"start": 1, "gain": 0.5}]}


def _install(root: Path, name: str, module: str | None, entry: str) -> None:
    """A distribution ``name`` on ``root``: its module (if any) and a dist-info declaring ``entry`` in the
    pytest_ltx.families group — what ``pip install`` of a real package leaves behind."""
    if module is not None:
        (root / f"{name}.py").write_text(module)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[pytest_ltx.families]\n{entry}\n")


@pytest.fixture
def luma_installed(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The luma package installed on a fresh sys.path entry; the default registry is rebuilt from it and
    is in force here (this very pytest run activated its own registry before the package existed)."""
    root = tmp_path_factory.mktemp("site")
    _install(root, "luma_family", LUMA_MODULE, "mean_luma = luma_family:FAMILY")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(families, "_DEFAULT", None)
    with families.activate(families.default_registry()):
        yield root


@pytest.fixture(scope="module")
def warm() -> None:
    """In-process pytester runs drop the modules an inner run imported: load the heavy ones first."""
    import numpy.fft  # noqa: F401

    import pytest_ltx.baseline
    import pytest_ltx.collect
    import pytest_ltx.media
    import pytest_ltx.metrics.audio
    import pytest_ltx.metrics.motion
    import pytest_ltx.metrics.structural
    import pytest_ltx.report.page
    import pytest_ltx.testcard  # noqa: F401
    from pytest_ltx.report import plots

    plots._mpl()


def _truth_luma(card: dict) -> float:
    """Mean luma of the card's frames as drawn (before encoding): the known truth."""
    import cv2

    from pytest_ltx.testcard import TestCardSpec, iter_frames

    return float(np.mean([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).mean() for f in iter_frames(TestCardSpec(**card))]))


# ---- end to end ------------------------------------------------------------------------------------


def test_third_party_family_end_to_end(pytester: pytest.Pytester, luma_installed: Path, warm: None) -> None:
    """Declared by the entry point only: validated in the spec, measured right, checked (one card passes,
    the dim one fails), written to results.json under its name, and kept in the golden baseline."""
    bright, dim = _truth_luma(CARD), _truth_luma(DIM)
    assert bright - dim > 20  # the cards differ plainly
    bound = (bright + dim) / 2
    specs = pytester.path / "specs"
    specs.mkdir()
    (specs / "luma.yaml").write_text(json.dumps({"clips": [
        {"id": "bright", "testcard": CARD, "expect": {"mean_luma": {"min": bound}}},
        {"id": "dim", "testcard": DIM, "expect": {"mean_luma": {"min": bound}}},
    ]}))
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider", "--ltx-create-missing",
                           "-W", "ignore::pytest.PytestAssertRewriteWarning")
    r.assert_outcomes(passed=1, failed=1)
    r.stdout.fnmatch_lines([f"*mean_luma.range: mean luma *, allowed {bound:g}-255*"])
    doc = json.loads((pytester.path / "ltx-report" / "results.json").read_text())
    items = {i["item"]: i for i in doc["items"]}
    for name, truth in (("bright", bright), ("dim", dim)):
        section = items[name]["evaluation"]["mean_luma"]
        measured = section["mean"]
        assert section["scalars"] == {"mean": measured}  # what the HTML report's measurements list
        assert measured == pytest.approx(truth, abs=3.0)  # H.264 at crf 18 moves the mean by a level or two
    page = (pytester.path / "ltx-report" / "index.html").read_text()
    assert "mean_luma" in page and f"{items['bright']['evaluation']['mean_luma']['mean']:.4g}"[:4] in page
    status = {n: {o["check"]: o["status"] for o in i["outcomes"]}["mean_luma.range"] for n, i in items.items()}
    assert status == {"bright": "passed", "dim": "failed"}
    rec = json.loads((pytester.path / "baselines/specs/luma/bright/testcard/record.json").read_text())
    assert rec["scalars"]["mean_luma.mean"] == pytest.approx(bright, abs=3.0)


def test_third_party_family_baseline_lifecycle(pytester: pytest.Pytester, luma_installed: Path, warm: None) -> None:
    """The public helper walks missing → create → pass → change fails → update → pass."""
    life = check_family_lifecycle(pytester, family="mean_luma", expect={"mean_luma": {"max": 250}},
                                  card=CARD, changed_card=DIM)
    assert life.created["mean_luma.mean"] == pytest.approx(_truth_luma(CARD), abs=3.0)
    assert life.updated["mean_luma.mean"] == pytest.approx(_truth_luma(DIM), abs=3.0)
    assert "mean_luma.mean" in life.outputs["changed"]  # the diff names the moved value
    assert life.results["mean"] == pytest.approx(life.created["mean_luma.mean"], abs=1e-3)


def test_lifecycle_helper_fails_on_a_family_that_does_not_move(pytester: pytest.Pytester, luma_installed: Path,
                                                               warm: None) -> None:
    """The helper can fail: a "change" that leaves the family's values where they were (here: the same
    card) is reported at the 'changed' step, with pytest's output."""
    with pytest.raises(AssertionError, match="step 'changed'"):
        check_family_lifecycle(pytester, family="mean_luma", expect={"mean_luma": {}}, card=CARD,
                               changed_card=CARD)


def test_spec_validates_third_party_keys(tmp_path: Path, luma_installed: Path) -> None:
    """A registered family's expectation is checked by its model (file:line: field); a key nobody
    registered is still an unknown expectation family."""
    from pytest_ltx.spec import SpecFileError, load_spec_file

    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent("""\
        clips:
          - id: a
            testcard: {width: 64, height: 64, frames: 9}
            expect:
              mean_luma: {min: -1, maxx: 3}
              mean_lumen: {}
        """))
    with pytest.raises(SpecFileError) as info:
        load_spec_file(p)
    text = str(info.value).replace(str(tmp_path) + "/", "")
    assert "s.yaml:5: clips[0].expect.mean_luma.min: must be >= 0, got -1" in text, text
    assert "s.yaml:5: clips[0].expect.mean_luma: unknown key 'maxx'" in text, text
    assert "s.yaml:6: clips[0].expect: unknown expectation family 'mean_lumen' (did you mean 'mean_luma'?)" in text, text
    p.write_text("clips:\n  - id: a\n    testcard: {width: 64, height: 64, frames: 9}\n"
                 "    expect: {mean_luma: {min: 10}}\n")
    (clip,) = load_spec_file(p).clips
    e = clip.expectations.family("mean_luma")
    assert (e.min, e.max) == (10.0, 255.0)
    assert clip.expectations.model_dump(mode="json")["mean_luma"] == {"min": 10.0, "max": 255.0}
    # merged per family like a built-in: file defaults, replaced whole by a clip's own
    p.write_text("defaults:\n  expect: {mean_luma: {max: 90}}\nclips:\n"
                 "  - id: a\n    testcard: {width: 64, height: 64, frames: 9}\n"
                 "  - id: b\n    testcard: {width: 64, height: 64, frames: 9}\n    expect: {mean_luma: {min: 3}}\n")
    a, b = load_spec_file(p).clips
    assert (a.expectations.family("mean_luma").max, b.expectations.family("mean_luma").max) == (90.0, 255.0)


def test_evaluate_and_cli_use_registered_families(tmp_path: Path, luma_installed: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_ltx.cli import main
    from pytest_ltx.evaluate import evaluate
    from pytest_ltx.testcard import TestCardSpec, write

    clip = tmp_path / "c.mp4"
    write(TestCardSpec(**CARD), clip)
    ev = evaluate(clip, metrics=["mean_luma"])
    assert ev.scalars()["mean_luma.mean"] == pytest.approx(_truth_luma(CARD), abs=3.0)
    assert main(["evaluate", str(clip), "--metrics", "mean_luma"]) == 0
    assert "mean_luma: " in capsys.readouterr().out


# ---- the registry ----------------------------------------------------------------------------------


def _fam(name: str = "x", key: str | None = None) -> MetricFamily:
    from pydantic import BaseModel

    class E(BaseModel):
        pass

    return MetricFamily(name, lambda e, c: None, expect_key=key, expect_model=E if key else None)


def test_builtins_registered_like_third_parties() -> None:
    reg = families.builtin_registry()
    from pytest_ltx.evaluate import FAMILIES

    assert reg.names() == FAMILIES
    assert {f.origin for f in reg} == {"pytest-ltx"}
    clip = reg.get("clip_similarity")
    assert (clip.expect_key, reg.by_expect_key("clip")) == ("clip", clip)  # the one declared mapping
    from pytest_ltx.expect import Expectations

    for f in reg:  # a built-in's model is the Expectations field of its key
        if f.expect_key is not None:
            assert Expectations.model_fields[f.expect_key].annotation == f.model() | None


def test_duplicates_are_refused_with_both_origins() -> None:
    reg = families.builtin_registry()
    with pytest.raises(FamilyError, match=r"'motion' from my-plugin is already registered \(by pytest-ltx\)"):
        reg.register(_fam("motion"), origin="my-plugin")
    with pytest.raises(FamilyError, match=r"expectation key 'clip' is already used by family 'clip_similarity'"):
        reg.register(_fam("clip2", "clip"), origin="my-plugin")
    with pytest.raises(FamilyError, match="expectation key 'baseline' is reserved"):
        reg.register(_fam("b2", "baseline"), origin="my-plugin")
    reg.register(_fam("fine", "fine"), origin="my-plugin")
    assert reg.names()[-1] == "fine" and reg.get("fine").origin == "my-plugin"


@pytest.mark.parametrize("kw, msg", [
    ({"name": "Bad Name"}, "must be lower-case"),
    ({"name": "x", "consumer": 3}, "consumer must be a callable"),
    ({"name": "x", "expect_key": "x"}, "expect_key and expect_model go together"),
    ({"name": "x", "check": lambda r, e, c: []}, "a check needs an expect_key"),
    ({"name": "x", "expect_key": "x", "expect_model": "not a reference"}, "or a reference 'package.module:Class'"),
    ({"name": "x", "expect_key": "x", "expect_model": dict}, "must be a pydantic model class"),
])
def test_bad_definitions(kw: dict, msg: str) -> None:
    with pytest.raises(FamilyError, match=msg):
        MetricFamily(**{"consumer": lambda e, c: None, **kw})


def test_lazy_expect_model_is_imported_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_expect_xyz.py").write_text(textwrap.dedent("""\
        from pydantic import BaseModel, ConfigDict
        class LazyExpect(BaseModel):
            model_config = ConfigDict(extra="forbid")
            top: float = 1.0
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    fam = MetricFamily("lazy", lambda e, c: None, "lazy", "lazy_expect_xyz:LazyExpect")
    assert "lazy_expect_xyz" not in sys.modules  # declaring it imports nothing
    reg = families.builtin_registry()
    reg.register(fam, origin="my-plugin")
    from pytest_ltx.expect import Expectations

    with families.activate(reg):
        e = Expectations.model_validate({"lazy": {"top": 0.5}})
        assert type(e.family("lazy")).__name__ == "LazyExpect" and e.family("lazy").top == 0.5
        assert Expectations.extra_model("lazy") is fam.model()
        with pytest.raises(ValidationError, match="lazy.wrong"):
            Expectations.model_validate({"lazy": {"wrong": 1}})


@pytest.mark.parametrize("ref, msg", [
    ("no_such_module_xyz:E", "expect_model 'no_such_module_xyz:E' cannot be imported: ModuleNotFoundError"),
    ("json:NoSuchClass", "cannot be imported: AttributeError"),
    ("json:JSONDecoder", "must be a pydantic model class"),
])
def test_broken_lazy_expect_model_names_the_family(ref: str, msg: str) -> None:
    fam = MetricFamily("lazy", lambda e, c: None, "lazy", ref)
    with pytest.raises(FamilyError, match=f"metric family 'lazy': .*{msg}"):
        fam.model()


def test_evaluate_without_a_spec_imports_no_expectation_models() -> None:
    """`pytest-ltx evaluate` start-up: the registry holds the built-ins without importing pydantic's
    expectation models (PySceneDetect's whole process is the yardstick: benchmarks/bench_cli.py)."""
    code = ("import sys\n"
            "from pytest_ltx.evaluate import families_for\n"
            "families_for(None, ['motion'])\n"
            "print(','.join(m for m in ('pydantic', 'pytest_ltx.expect') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _ep(name: str, value: str, dist: str = "acme-metrics") -> SimpleNamespace:
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name, value, families.ENTRY_POINT_GROUP)
    return SimpleNamespace(name=name, value=value, dist=SimpleNamespace(name=dist), load=ep.load)


def test_bad_entry_point_is_named() -> None:
    reg = FamilyRegistry()
    with pytest.raises(FamilyError, match=r"entry point broken = 'no_such_module_xyz:FAMILY' "
                                          r"\(pytest_ltx.families, acme-metrics\) cannot be loaded: "
                                          r"ModuleNotFoundError"):
        reg.load_entry_points([_ep("broken", "no_such_module_xyz:FAMILY")])
    with pytest.raises(FamilyError, match=r"entry point wrong = 'json:JSONDecoder' .* gave the class JSONDecoder"):
        reg.load_entry_points([_ep("wrong", "json:JSONDecoder")])
    with pytest.raises(FamilyError, match=r"entry point num = 'math:pi' .* gave float"):
        reg.load_entry_points([_ep("num", "math:pi")])


def test_entry_point_with_a_register_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "two_fams.py").write_text(textwrap.dedent("""\
        from pytest_ltx.families import MetricFamily
        def register(registry):
            registry.register(MetricFamily("aa", lambda e, c: None))
            registry.register(MetricFamily("bb", lambda e, c: None))
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = FamilyRegistry()
    reg.load_entry_points([_ep("two", "two_fams:register")])
    assert reg.names() == ("aa", "bb") and "two_fams:register" in reg.get("aa").origin


def test_hook_registers_families_for_one_run(pytester: pytest.Pytester, warm: None) -> None:
    """A conftest's pytest_ltx_register_families adds a family for that run only; a clash is a usage
    error naming both sides."""
    pytester.makeconftest(LUMA_MODULE + "\n\ndef pytest_ltx_register_families(registry):\n"
                          "    registry.register(FAMILY)\n")
    specs = pytester.path / "specs"
    specs.mkdir()
    (specs / "luma.yaml").write_text(json.dumps({"clips": [
        {"id": "dim", "testcard": DIM, "expect": {"mean_luma": {"max": _truth_luma(DIM) + 10}}}]}))
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider", "--ltx-create-missing")
    r.assert_outcomes(passed=1)
    assert "mean_luma" not in families.registry()  # gone with the run
    pytester.makeconftest("from pytest_ltx.families import MetricFamily\n"
                          "def pytest_ltx_register_families(registry):\n"
                          "    registry.register(MetricFamily('motion', lambda e, c: None))\n")
    r = pytester.runpytest("specs/", "-p", "no:cacheprovider")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "pytest-ltx: metric family 'motion' from " in r.stderr.str() + r.stdout.str()


@pytest.mark.slow
def test_hook_family_lifecycle_under_xdist(pytester: pytest.Pytester, warm: None) -> None:
    """The same lifecycle with the family from a conftest hook and two xdist workers (each worker
    registers it in its own pytest_configure; the controller writes the baselines)."""
    pytester.makeconftest(LUMA_MODULE + "\n\ndef pytest_ltx_register_families(registry):\n"
                          "    registry.register(FAMILY)\n")
    life = check_family_lifecycle(pytester, family="mean_luma", expect={"mean_luma": {}}, card=CARD,
                                  changed_card=DIM, args=("-n", "2"))
    assert life.updated["mean_luma.mean"] < life.created["mean_luma.mean"] - 20
