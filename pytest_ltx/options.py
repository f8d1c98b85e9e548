"""Every pytest-ltx option exists twice — a ``--ltx-*`` flag and an ini key — and resolves one way:
command line, then ini file, then the built-in default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

__all__ = ["OPTIONS", "Option", "Settings", "add_options", "resolve", "settings"]


def _parse_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()  # strictly: a typo ("flase", "of") must not silently mean true or false
    if s in ("1", "true", "yes"):
        return True
    if s in ("0", "false", "no"):
        return False
    raise pytest.UsageError(f"expected a boolean (true/false/1/0/yes/no), got {v!r}")


def _parse_limits(v: Any) -> Any:
    from pytest_ltx.limits import parse_limits

    try:
        return parse_limits(v)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def _parse_nonneg_int(v: Any) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"expected a whole number, got {v!r}") from None
    if n < 0:
        raise pytest.UsageError(f"expected a number >= 0, got {n}")
    return n


def _parse_nonneg_float(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"expected a number, got {v!r}") from None
    if not x >= 0:
        raise pytest.UsageError(f"expected a number >= 0, got {v!r}")
    return x


def _parse_shard(v: Any) -> tuple[int, int] | None:
    """``i/n`` (1-based): this run takes shard i of n."""
    s = str(v).strip()
    if not s:
        return None
    a, sep, b = s.partition("/")
    if not (sep and a.strip().isdigit() and b.strip().isdigit()):
        raise pytest.UsageError(f"expected a shard as i/n (e.g. 2/4), got {v!r}")
    i, n = int(a), int(b)
    if not 1 <= i <= n:
        raise pytest.UsageError(f"shard {i}/{n}: i must be between 1 and n")
    return i, n


def _parse_str(v: Any) -> str:
    return str(v).strip()


def _parse_choice(*choices: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        s = str(v).strip().lower()
        if s not in choices:
            raise pytest.UsageError(f"expected one of {', '.join(choices)}, got {v!r}")
        return s

    return parse


def _parse_list(v: Any) -> tuple[str, ...]:
    if isinstance(v, (list, tuple)):
        items = [str(x) for x in v]
    else:
        items = str(v).replace(",", " ").split()
    return tuple(i for i in (x.strip() for x in items) if i)


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its ini key, how to parse it, its default and its help."""

    name: str
    help: str
    default: Any
    parse: Callable[[Any], Any] = _parse_str
    flag_kind: str = "value"  # "value" | "true" (store_true)
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--ltx-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "ltx_" + self.name

    @property
    def dest(self) -> str:
        return "ltx_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option("specs", "directories (relative to the rootdir) whose *.yaml / *.yml files are clip specs",
           ("specs",), _parse_list, metavar="DIRS"),
    Option("model", "render every clip with this model profile instead of the one its spec names",
           None, metavar="PROFILE"),
    Option("preset", "apply this preset (specs/presets.yaml or [tool.pytest-ltx.presets]) to every clip, "
           "instead of the one its spec names; part of each rendered item's id and baseline",
           None, metavar="NAME"),
    Option("device", "device for rendering and metrics: auto, cpu, cuda, cuda:N", None, metavar="DEVICE"),
    Option("no_cache", "render and evaluate even when the render / evaluation caches hold the result (the "
           "caches are still updated)", False, _parse_bool, "true"),
    Option("recheck_determinism", "re-render determinism checks even when this request was already proven "
           "bit-identical in this environment", False, _parse_bool, "true"),
    Option("cache_dir", "render cache directory", ".ltx-cache", metavar="DIR"),
    Option("report_dir", "where results.json, clips and keyframe strips are written", "ltx-report",
           metavar="DIR"),
    Option("history", "earlier results.json files, or folders holding them (e.g. downloaded CI artifacts): the "
           "report shows each metric's history across those runs and this one", (), _parse_list, metavar="PATHS"),
    Option("baselines", "golden baseline directory", "baselines", metavar="DIR"),
    Option("update_baselines", "rewrite the golden baselines of the selected items (written at session end)",
           False, _parse_bool, "true"),
    Option("create_missing", "create baselines that do not exist yet instead of failing", False, _parse_bool,
           "true"),
    Option("prune_baselines", "delete baselines that no collected item uses (only when the whole suite ran)",
           False, _parse_bool, "true"),
    Option("allow_outside_root", "let paths in specs (`file:`, `audio:`, `image:`) point anywhere (by default "
           "a spec may only read files inside the rootdir or an --ltx-allow-dirs folder)", False, _parse_bool,
           "true"),
    Option("allow_dirs", "extra folders (outside the rootdir) that paths in specs may read", (), _parse_list,
           metavar="DIRS"),
    Option("limits", "raise input budgets, e.g. 'clip_mb=4096 audio_hz=384000' (names and defaults: "
           "docs/reliability.md)", None, _parse_limits, metavar="NAME=VALUE"),
    Option("calibrate", "render each item N times (neighbouring seeds) and store the metric spread in its "
           "baseline; implies --ltx-update-baselines", 0, _parse_nonneg_int, metavar="N"),
    Option("calibrate_seeds", "calibration runs use the item's own seed every time ('same': measures "
           "run-to-run noise, e.g. GPU kernels) or seed, seed+1, ... ('neighbouring': also seed variance)",
           "same", _parse_choice("same", "neighbouring"), metavar="same|neighbouring"),
    Option("render_timeout", "stop a render that runs longer than this many seconds (0: no limit; a spec's "
           "budget.timeout_s wins); a timeout is an infrastructure error", 0.0, _parse_nonneg_float,
           metavar="SECONDS"),
    Option("io_retries", "retry a render, model load or cache access that failed with an I/O error this many "
           "times, with exponential backoff", 2, _parse_nonneg_int, metavar="N"),
    Option("vram_margin", "GiB kept free on top of the VRAM planner's estimate", 1.5, _parse_nonneg_float,
           metavar="GIB"),
    Option("shard", "run only shard i of n (1-based), items balanced by the stored durations; every item is "
           "in exactly one shard, and the split is stable across runs", None, _parse_shard, metavar="i/n"),
    Option("durations", "JSON file of per-item durations that balances --ltx-shard, updated after each run "
           "(default: durations.json in the local render cache, restored with it in CI)", None, metavar="FILE"),
    Option("cache_max_gb", "size limit of the render cache in GB; least recently used entries are evicted "
           "(0: no limit)", 0.0, _parse_nonneg_float, metavar="GB"),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ltx", "pytest-ltx: creative CI for LTX-2 clips")
    for o in OPTIONS:
        if o.flag_kind == "true":
            group.addoption(o.flag, action="store_true", default=None, dest=o.dest,
                            help=f"{o.help} [ini: {o.ini}]")
        else:
            group.addoption(o.flag, action="store", default=None, dest=o.dest, metavar=o.metavar,
                            help=f"{o.help} (default: {_show(o.default)}) [ini: {o.ini}]")
        parser.addini(o.ini, help=f"{o.help} [--ltx-{o.name.replace('_', '-')}]", default=None)


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return " ".join(v) or "none"
    return "none" if v is None else str(v)


def resolve(config: pytest.Config, name: str) -> Any:
    """Command line > ini > default, parsed. Bad values raise a UsageError naming the option."""
    o = _BY_NAME[name]
    cli = config.getoption(o.dest, default=None)
    raw: Any
    origin: str
    if cli is not None:
        raw, origin = cli, o.flag
    else:
        ini = config.getini(o.ini)
        if ini is None or ini == "" or ini == []:
            return o.default
        raw, origin = ini, f"ini {o.ini}"
    try:
        return o.parse(raw)
    except pytest.UsageError as e:
        raise pytest.UsageError(f"pytest-ltx: {origin}: {e}") from None


@dataclass(frozen=True)
class Settings:
    """All options resolved once per session."""

    rootdir: Path
    specs: tuple[str, ...]
    model: str | None
    preset: str | None
    device: str | None
    no_cache: bool
    recheck_determinism: bool
    cache_dir: Path
    report_dir: Path
    history: tuple[Path, ...]
    baselines: Path
    update_baselines: bool
    create_missing: bool
    prune_baselines: bool
    calibrate: int
    calibrate_seeds: str
    allow_outside_root: bool
    #: resolved folders outside the rootdir that spec paths may read (``--ltx-allow-dirs``)
    allow_dirs: tuple[Path, ...] = ()
    limits: Any = None
    render_timeout: float = 0.0
    io_retries: int = 2
    vram_margin: float = 1.5
    shard: tuple[int, int] | None = None
    durations: Path | None = None
    cache_max_gb: float = 0.0
    #: an fsspec URL (s3://…, gs://…) for the render cache instead of a local folder
    cache_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple) and v and isinstance(v[0], Path):
                v = [str(x) for x in v]
            elif hasattr(v, "to_dict"):
                v = v.to_dict()
            out[k] = v
        return out


def settings(config: pytest.Config) -> Settings:
    root = Path(config.rootpath)

    def path(name: str) -> Path:
        p = Path(resolve(config, name)).expanduser()
        return p if p.is_absolute() else root / p

    calibrate = resolve(config, "calibrate")
    cache_raw = str(resolve(config, "cache_dir"))
    cache_url = cache_raw if "://" in cache_raw and not cache_raw.startswith("file://") else None
    if cache_raw.startswith("file://"):
        cache_raw = cache_raw[len("file://"):]
    cache_dir = Path(cache_raw).expanduser()
    return Settings(
        rootdir=root,
        specs=resolve(config, "specs"),
        model=resolve(config, "model"),
        preset=resolve(config, "preset") or None,
        device=resolve(config, "device"),
        no_cache=resolve(config, "no_cache"),
        recheck_determinism=resolve(config, "recheck_determinism"),
        cache_dir=cache_dir if cache_dir.is_absolute() else root / cache_dir,
        report_dir=path("report_dir"),
        history=tuple(p if p.is_absolute() else Path(config.invocation_params.dir) / p
                      for p in (Path(h).expanduser() for h in resolve(config, "history"))),
        baselines=path("baselines"),
        update_baselines=resolve(config, "update_baselines") or calibrate > 1,
        create_missing=resolve(config, "create_missing"),
        prune_baselines=resolve(config, "prune_baselines"),
        calibrate=calibrate,
        calibrate_seeds=resolve(config, "calibrate_seeds"),
        allow_outside_root=resolve(config, "allow_outside_root"),
        allow_dirs=tuple(_allowed_dir(root, d) for d in resolve(config, "allow_dirs")),
        limits=resolve(config, "limits") or _default_limits(),
        render_timeout=resolve(config, "render_timeout"),
        io_retries=resolve(config, "io_retries"),
        vram_margin=resolve(config, "vram_margin"),
        shard=resolve(config, "shard"),
        durations=path("durations") if resolve(config, "durations") else (
            (cache_dir if cache_dir.is_absolute() else root / cache_dir) / "durations.json" if cache_url is None
            else path("report_dir") / "durations.json"),
        cache_max_gb=resolve(config, "cache_max_gb"),
        cache_url=cache_url,
    )


def _default_limits() -> Any:
    from pytest_ltx.limits import Limits

    return Limits()


def _allowed_dir(root: Path, d: str) -> Path:
    """An ``--ltx-allow-dirs`` folder, resolved. Allowing ``/`` or the home folder would switch the
    confinement off without saying so: that is what ``--ltx-allow-outside-root`` is for."""
    p = Path(d).expanduser()
    p = (p if p.is_absolute() else root / p).resolve()
    if p == Path(p.anchor) or p == Path.home().resolve():
        raise pytest.UsageError(
            f"pytest-ltx: ltx_allow_dirs: {d!r} is {'the file-system root' if p == Path(p.anchor) else 'the home folder'}; "
            "allow a narrower folder (or --ltx-allow-outside-root to lift the confinement knowingly)")
    return p
