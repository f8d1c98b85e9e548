"""The GPU-runner features through the plugin (pytester, test cards: no model): regression vs
infrastructure in results.json and the exit status, accepting candidate baselines from a results file
without rendering, shards, grouping by model."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
    pytest.mark.usefixtures("plugin_warm_modules"),
]

CARDS = textwrap.dedent("""
    clips:
      - id: steady
        testcard: {width: 64, height: 64, frames: 9, fps: 24, seed: 1}
        expect:
          motion: {cuts: 0}
      - id: cut
        testcard: {width: 64, height: 64, frames: 25, fps: 24, seed: 2, cuts: [12]}
        expect:
          motion: {cuts: 0}
""")

BROKEN_MODEL = textwrap.dedent("""
    clips:
      - id: nomodel
        model: not-declared
        prompt: a robot
        width: 64
        height: 64
        frames: 9
        steps: 1
        expect:
          motion: {}
""")


def write(pytester: pytest.Pytester, name: str, body: str) -> None:
    d = pytester.path / "specs"
    d.mkdir(exist_ok=True)
    (d / name).write_text(body)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("specs/", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                              *args)


def results(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "ltx-report" / "results.json").read_text())


def test_regression_and_infrastructure_are_told_apart(pytester: pytest.Pytester) -> None:
    write(pytester, "infra.yaml", BROKEN_MODEL)
    r = run(pytester, "--ltx-create-missing")
    # only an infrastructure error: exit 75 (retry the job), not 1
    assert r.ret == 75, r.stdout.str()
    doc = results(pytester)
    assert [i["failure_kind"] for i in doc["items"]] == ["infrastructure"]
    assert doc["summary"]["infrastructure"] == 1 and doc["meta"]["exit"] == {"status": 75, "kind": "infrastructure"}
    r.stdout.fnmatch_lines(["*infrastructure errors only, no regression: exit status 75*"])

    write(pytester, "cards.yaml", CARDS)
    r = run(pytester, "--ltx-create-missing")
    assert r.ret == 1  # a regression anywhere: 1
    kinds = {i["item"]: i["failure_kind"] for i in results(pytester)["items"]}
    assert kinds == {"nomodel[seed=0]": "infrastructure", "cut": "regression", "steady": None}
    assert results(pytester)["meta"]["exit"]["kind"] == "regression"


def test_accept_candidate_baselines_from_results_without_rendering(pytester: pytest.Pytester) -> None:
    from pytest_ltx.cli import main

    # both items pass their checks (the cut card expects its cut) and have no baseline yet
    write(pytester, "cards.yaml", CARDS[::-1].replace("}0 :stuc{", "}1 :stuc{", 1)[::-1])
    r = run(pytester)
    assert r.ret == 1  # both baselines missing
    doc = results(pytester)
    assert all(i["candidate"] and i["failure_kind"] == "regression" for i in doc["items"])
    res = str(pytester.path / "ltx-report" / "results.json")
    base = pytester.path / "baselines"

    assert main(["baselines", "accept", "--from", res, "-k", "steady", "--baselines", str(base), "--dry-run"]) == 0
    assert not base.exists()
    assert main(["baselines", "accept", "--from", res, "-k", "steady and not cut", "--baselines", str(base)]) == 0
    assert (base / "specs" / "cards" / "steady" / "testcard" / "record.json").is_file()
    assert not (base / "specs" / "cards" / "cut").exists()
    assert main(["baselines", "accept", "--from", res, "-k", "nothing-matches", "--baselines", str(base)]) == 1
    assert main(["baselines", "accept", "--from", res, "--baselines", str(base)]) == 0
    # the accepted records are exactly what the run measured: the next run passes against them
    r = run(pytester)
    assert r.ret == 0, r.stdout.str()
    assert all(i["candidate"] is None for i in results(pytester)["items"])
    # a file that is not a results.json is a clear error
    bogus = pytester.path / "x.json"
    bogus.write_text("{}")
    assert main(["baselines", "accept", "--from", str(bogus)]) == 2


def test_shards_split_the_run_and_durations_are_stored(pytester: pytest.Pytester) -> None:
    body = "clips:\n" + "".join(
        f"  - id: c{i}\n    testcard: {{width: 32, height: 32, frames: 9, fps: 24, seed: {i}}}\n"
        f"    expect: {{baseline: {{enabled: false}}}}\n" for i in range(5))
    write(pytester, "many.yaml", body)
    r = run(pytester)  # a first, unsharded run stores every item's duration
    assert r.ret == 0, r.stdout.str()
    stored = pytester.path / ".ltx-cache" / "durations.json"
    durations = json.loads(stored.read_text())["durations"]
    assert set(durations) == {f"specs/many.yaml::c{i}" for i in range(5)}
    # every job of a sharded run balances on the same frozen copy (CI hands one to all shards)
    seen: list[set[str]] = []
    for i in (1, 2):
        frozen = pytester.path / f"durations-{i}.json"
        frozen.write_text(stored.read_text())
        r = run(pytester, f"--ltx-shard={i}/2", f"--ltx-durations={frozen}")
        assert r.ret == 0, r.stdout.str()
        seen.append({it["item"] for it in results(pytester)["items"]})
    assert seen[0] | seen[1] == {f"c{i}" for i in range(5)} and not seen[0] & seen[1] and all(seen)
    r = run(pytester, "--ltx-shard=3/2")
    assert r.ret == 4 and "shard 3/2" in r.stderr.str()


MIXED_MODELS = textwrap.dedent("""
    defaults: {width: 64, height: 64, frames: 9, steps: 1}
    clips:
      - {id: a, prompt: x, model: gpu}
      - {id: b, prompt: x, model: cpu}
      - {id: card, testcard: {width: 32, height: 32, frames: 9, fps: 24}}
      - {id: c, prompt: x, model: gpu}
      - {id: d, prompt: x, model: cpu}
""")

GPU_AND_CPU_PROFILES = textwrap.dedent("""
    [tool.pytest-ltx.models.gpu]
    path = "/nowhere/LTX-2.3"
    device = "cuda"
    [tool.pytest-ltx.models.cpu]
    path = "/nowhere/LTX-2.3"
    device = "cpu"
""")


def test_items_are_ordered_by_model_and_grouped_only_under_loadgroup(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(GPU_AND_CPU_PROFILES)
    write(pytester, "mixed.yaml", MIXED_MODELS)
    rec = pytester.inline_run("specs/", "--collect-only", "-p", "no:cacheprovider")
    items = rec.getcall("pytest_collection_finish").session.items  # the final order
    assert [i.name for i in items] == ["a[seed=0]", "c[seed=0]", "b[seed=0]", "d[seed=0]", "card"]
    # without --dist loadgroup nothing reads an xdist group: none is computed (no CUDA probe at collection)
    assert not [m for i in items for m in i.iter_markers("xdist_group")]


def test_gpu_models_are_grouped_cpu_models_are_not(pytester: pytest.Pytester) -> None:
    """The mark is visible to xdist's own collection hook (it was not, when pytest-ltx marked items last:
    ``--dist loadgroup`` then grouped nothing), only GPU models are grouped, and what pytest-ltx records
    keeps the plain node ids."""
    from pytest_ltx.shard import mark_gpu_groups

    pytester.makepyprojecttoml(GPU_AND_CPU_PROFILES)
    write(pytester, "mixed.yaml", MIXED_MODELS)
    rec = pytester.inline_run("specs/", "--collect-only", "-p", "no:cacheprovider")
    items = rec.getcall("pytest_collection_finish").session.items
    from pytest_ltx.session import get_session

    s = get_session(items[0].config)
    assert mark_gpu_groups(items, s) == ["ltx-model-gpu"]
    groups = {i.name: [m.kwargs.get("name") for m in i.iter_markers("xdist_group")] for i in items}
    assert groups == {"a[seed=0]": ["ltx-model-gpu"], "c[seed=0]": ["ltx-model-gpu"], "b[seed=0]": [],
                      "d[seed=0]": [], "card": []}

    # a real -n 2 --dist loadgroup run: both GPU items on one worker, the CPU items and cards spread
    body = MIXED_MODELS + "".join(f"  - {{id: e{i}, prompt: x, model: cpu}}\n" for i in range(4))
    write(pytester, "mixed.yaml", body)
    r = run(pytester, "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:randomly")
    where: dict[str, set[str]] = {}
    for line in r.stdout.lines:
        m = re.match(r"\[(gw\d+)\] .*?(specs/mixed\.yaml::\S+)", line)
        if m:
            where.setdefault(m.group(2), set()).add(m.group(1))
    gpu = {k: v for k, v in where.items() if k.split("::")[1].startswith(("a[", "c["))}
    cpu = {k: v for k, v in where.items() if k.split("::")[1].startswith(("b[", "d[", "e"))}
    assert sorted(gpu) == ["specs/mixed.yaml::a[seed=0]@ltx-model-gpu", "specs/mixed.yaml::c[seed=0]@ltx-model-gpu"], \
        r.stdout.str()
    assert len(set().union(*gpu.values())) == 1, gpu  # one worker has the GPU model
    assert len(cpu) == 6 and not any("@" in k for k in cpu), cpu
    assert set().union(*cpu.values()) == {"gw0", "gw1"}, cpu  # the CPU model's items run on both
    ids = {it["nodeid"] for it in results(pytester)["items"]}
    assert "specs/mixed.yaml::a[seed=0]" in ids and not any("@" in i for i in ids), ids


def test_plain_nodeid_strips_only_the_xdist_group_suffix() -> None:
    from pytest_ltx.shard import plain_nodeid, renders_on_gpu

    assert plain_nodeid("specs/a.yaml::x[seed=0]@ltx-model-tiny") == "specs/a.yaml::x[seed=0]"
    assert plain_nodeid("specs/a.yaml::x@ltx-model-a_b") == "specs/a.yaml::x"
    assert plain_nodeid("specs/a.yaml::x[v=a@b]") == "specs/a.yaml::x[v=a@b]"  # an "@" in a value is kept
    assert plain_nodeid("specs/a.yaml::x[v=a@b]@g") == "specs/a.yaml::x[v=a@b]"
    assert plain_nodeid("specs/a@b.yaml::x") == "specs/a@b.yaml::x"
    never = lambda: pytest.fail("CUDA must not be probed for an explicit device")  # noqa: E731
    assert renders_on_gpu("cuda", never) and renders_on_gpu("cuda:1", never)
    assert not renders_on_gpu("cpu", never)
    assert renders_on_gpu("auto", lambda: True) and not renders_on_gpu("auto", lambda: False)


def test_plan_command_prints_each_items_envelope(pytester: pytest.Pytester, capsys) -> None:
    from pytest_ltx.cli import main

    write(pytester, "r.yaml", textwrap.dedent("""
        defaults: {model: tiny, width: 64, height: 64, frames: 9, steps: 1}
        clips:
          - id: small
            prompt: a robot
          - id: budgeted
            prompt: a robot
            expect:
              budget: {vram_gb_max: 0.001}
          - {id: card, testcard: {width: 32, height: 32, frames: 9, fps: 24}}
    """))
    with _cwd(pytester.path):
        rc = main(["plan", "specs/", "--free-gb", "80", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1  # the 1 MB budget cannot be met
    by = {e["nodeid"].split("::")[1]: e for e in out}
    assert set(by) == {"small[seed=0]", "budgeted[seed=0]"}  # test cards are not rendered
    assert by["small[seed=0]"]["ok"] and by["small[seed=0]"]["plan"]["offload"] == "none"
    assert set(by["small[seed=0]"]["plan"]["weights_gb"]) >= {"transformer", "text_encoder", "vae"}
    assert not by["budgeted[seed=0]"]["ok"] and by["budgeted[seed=0]"]["plan"]["vram_gb_max"] == 0.001


class _cwd:
    def __init__(self, path: Path) -> None:
        self.path, self.old = path, None

    def __enter__(self) -> None:
        import os

        self.old = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        import os

        os.chdir(self.old)
