"""The metric-family registry: what a metric family is, and the one place every family is declared.

A :class:`MetricFamily` says everything pytest-ltx needs to compute, check, store and report one family:

- ``name``: its one canonical name — the results section in ``results.json``, the prefix of its baseline
  scalars/arrays (``motion.flow_mean``), the name ``pytest-ltx evaluate --metrics`` takes;
- ``expect_key`` and ``expect_model``: the key under ``expect:`` in a spec that switches it on, and the
  pydantic model that validates it (strict: unknown keys are spec errors with file, line and field) — the
  class, or a lazy reference ``"package.module:Class"`` imported the first time a spec needs it (the
  built-ins use those, so ``pytest-ltx evaluate`` never imports pydantic's expectation models); read it
  with :meth:`MetricFamily.model`;
- ``consumer``: a factory of the streaming analysis (:class:`pytest_ltx.stream.Consumer`), called with the
  clip's :class:`~pytest_ltx.expect.Expectations` (or None) and the :class:`~pytest_ltx.evaluate.MetricContext`;
- ``check``: ``(result, expectation, context) -> outcomes``, called when the spec sets ``expect_key``;
- ``scalars`` / ``arrays``: what golden baselines keep of a result (flat numbers; small per-keyframe arrays);
- ``summary``: optionally, its line (from the result's ``to_dict()``) in ``pytest-ltx evaluate``'s output;
- ``report_scalars``: the results section carries ``scalars`` (the HTML report's measurements table).

The built-in families (:mod:`pytest_ltx.families.builtin`) are registered through the same
:meth:`FamilyRegistry.register` as third-party ones, which come from

- the ``pytest_ltx.families`` entry-point group: each entry point names a :class:`MetricFamily`, a list of
  them, or a function ``register(registry)``; and
- the pytest hook ``pytest_ltx_register_families(registry)`` (:mod:`pytest_ltx.hookspecs`), for a
  conftest.py or a pytest plugin.

:func:`registry` is the registry in force: inside a pytest run the one the plugin built for that run
(built-ins, entry points, hook implementations); elsewhere the built-ins plus the entry points.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pytest_ltx.evaluate import MetricContext
    from pytest_ltx.expect import Expectations
    from pytest_ltx.outcome import Outcome
    from pytest_ltx.stream import Consumer

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "FamilyError", "FamilyRegistry", "MetricFamily", "activate",
           "activate_for_run", "builtin_registry", "deactivate_for_run", "default_registry", "registry"]

#: the entry-point group third-party metric families are published in
ENTRY_POINT_GROUP = "pytest_ltx.families"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: a lazy reference to a class: ``package.module:Class``
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_RESOLVED: dict[str, Any] = {}


class FamilyError(ValueError):
    """A metric family that cannot be registered (bad definition, duplicate name, broken entry point)."""


ConsumerFactory = Callable[["Expectations | None", "MetricContext"], "Consumer"]
CheckFn = Callable[[Any, Any, "MetricContext"], "Sequence[Outcome]"]


@dataclass(frozen=True)
class MetricFamily:
    """One metric family (see the module docs). Only ``name`` and ``consumer`` are required: a family
    without ``expect_key`` is computed only when asked for by name (or ``always``)."""

    name: str
    consumer: ConsumerFactory
    expect_key: str | None = None
    expect_model: type[BaseModel] | str | None = None
    check: CheckFn | None = None
    #: result -> flat ``{key: number}`` golden baselines store and compare (as ``<name>.<key>``)
    scalars: Callable[[Any], Mapping[str, Any]] | None = None
    #: result -> ``{key: ndarray}`` small per-keyframe arrays golden baselines keep (as ``<name>.<key>``)
    arrays: Callable[[Any], Mapping[str, Any]] | None = None
    #: result dict (its ``to_dict()``) -> one line of text, for ``pytest-ltx evaluate`` and reports
    summary: Callable[[Mapping[str, Any]], str] | None = None
    #: computed for every clip, expectation or not (baselines keep it)
    always: bool = False
    #: the results section carries ``scalars`` (added from ``scalars(result)`` when ``to_dict()`` has none):
    #: what the HTML report's measurements table lists
    report_scalars: bool = True
    #: who registered it (filled in by the registry: "pytest-ltx", an entry point, a plugin)
    origin: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise FamilyError(f"metric family name {self.name!r} must be lower-case letters, digits and '_' "
                              "(a results section and a baseline prefix), at most 40 characters")
        if not callable(self.consumer):
            raise FamilyError(f"metric family {self.name!r}: consumer must be a callable "
                              "(expect, context) -> pytest_ltx.stream.Consumer")
        if (self.expect_key is None) != (self.expect_model is None):
            raise FamilyError(f"metric family {self.name!r}: expect_key and expect_model go together")
        if self.expect_key is not None and not _NAME.match(self.expect_key):
            raise FamilyError(f"metric family {self.name!r}: expect_key {self.expect_key!r} must be lower-case "
                              "letters, digits and '_'")
        if isinstance(self.expect_model, str):
            if not _REF.match(self.expect_model):
                raise FamilyError(f"metric family {self.name!r}: expect_model {self.expect_model!r} must be a "
                                  "pydantic model class or a reference 'package.module:Class'")
        elif self.expect_model is not None:
            _check_model(self.name, self.expect_model)
        if self.check is not None and self.expect_key is None:
            raise FamilyError(f"metric family {self.name!r}: a check needs an expect_key to switch it on")
        for what in ("check", "scalars", "arrays", "summary"):
            f = getattr(self, what)
            if f is not None and not callable(f):
                raise FamilyError(f"metric family {self.name!r}: {what} must be callable")

    def model(self) -> type[BaseModel] | None:
        """The pydantic model of ``expect_key`` (a lazy reference is imported and checked once, here; a
        broken one raises :class:`FamilyError` naming the family)."""
        ref = self.expect_model
        if ref is None or not isinstance(ref, str):
            return ref
        cls = _RESOLVED.get(ref)
        if cls is None:
            import importlib

            module, _, attr = ref.partition(":")
            try:
                cls = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as e:
                raise FamilyError(f"metric family {self.name!r}: expect_model {ref!r} cannot be imported: "
                                  f"{e.__class__.__name__}: {e}") from e
            _check_model(self.name, cls)
            _RESOLVED[ref] = cls
        return cls

    def result_scalars(self, result: Any) -> dict[str, Any]:
        return dict(self.scalars(result)) if self.scalars is not None else {}

    def result_arrays(self, result: Any) -> dict[str, Any]:
        return dict(self.arrays(result)) if self.arrays is not None else {}


def _check_model(name: str, model: Any) -> None:
    from pydantic import BaseModel

    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise FamilyError(f"metric family {name!r}: expect_model must be a pydantic model class")


class FamilyRegistry:
    """Metric families by canonical name, in registration order (the order they are computed and reported).
    Names and expectation keys are unique; a duplicate is refused with both origins named."""

    def __init__(self, families: Iterable[MetricFamily] = ()) -> None:
        self._by_name: dict[str, MetricFamily] = {}
        self._by_key: dict[str, MetricFamily] = {}
        for f in families:
            self.register(f)

    def register(self, family: MetricFamily, *, origin: str | None = None) -> MetricFamily:
        """Add ``family``; returns it (with ``origin`` filled in). Raises :class:`FamilyError` on a name or
        expectation key that is taken, or one that the spec language reserves."""
        if not isinstance(family, MetricFamily):
            raise FamilyError(f"expected a pytest_ltx.families.MetricFamily, got {type(family).__name__}"
                              + (f" (from {origin})" if origin else ""))
        if origin is not None or not family.origin:
            from dataclasses import replace

            family = replace(family, origin=origin or family.origin or "unknown")
        old = self._by_name.get(family.name)
        if old is not None:
            raise FamilyError(f"metric family {family.name!r} from {family.origin} is already registered "
                              f"(by {old.origin}); pick another name")
        if family.expect_key is not None:
            old = self._by_key.get(family.expect_key)
            if old is not None:
                raise FamilyError(f"metric family {family.name!r} from {family.origin}: expectation key "
                                  f"{family.expect_key!r} is already used by family {old.name!r} ({old.origin})")
            if family.origin != BUILTIN and family.expect_key in _reserved_expect_keys():
                raise FamilyError(f"metric family {family.name!r} from {family.origin}: expectation key "
                                  f"{family.expect_key!r} is reserved by pytest-ltx's spec language")
            self._by_key[family.expect_key] = family
        self._by_name[family.name] = family
        return family

    def get(self, name: str) -> MetricFamily:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown metric family {name!r}; known: {', '.join(self._by_name)}") from None

    def by_expect_key(self, key: str) -> MetricFamily | None:
        return self._by_key.get(key)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __iter__(self) -> Iterator[MetricFamily]:
        return iter(tuple(self._by_name.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def copy(self) -> FamilyRegistry:
        new = FamilyRegistry()
        new._by_name = dict(self._by_name)
        new._by_key = dict(self._by_key)
        return new

    def load(self, obj: Any, origin: str) -> None:
        """Register what a provider gave: a :class:`MetricFamily`, an iterable of them, or a function
        ``register(registry)``."""
        if isinstance(obj, MetricFamily):
            self.register(obj, origin=origin)
        elif isinstance(obj, type):
            raise FamilyError(f"{origin} gave the class {obj.__name__}; expected a MetricFamily, a list of them "
                              "or a function register(registry)")
        elif callable(obj):
            obj(_Scoped(self, origin))
        elif isinstance(obj, (list, tuple)):
            for f in obj:
                self.register(f, origin=origin)
        else:
            raise FamilyError(f"{origin} gave {type(obj).__name__}; expected a MetricFamily, a list of them "
                              "or a function register(registry)")

    def load_entry_points(self, entry_points: Iterable[Any] | None = None) -> None:
        """Register the families of every entry point in the ``pytest_ltx.families`` group. A broken one
        raises :class:`FamilyError` naming the entry point and its distribution."""
        if entry_points is None:
            from importlib.metadata import entry_points as _eps

            entry_points = _eps(group=ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: e.name):
            dist = getattr(getattr(ep, "dist", None), "name", None)
            origin = f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP}" + (f", {dist})" if dist else ")")
            try:
                obj = ep.load()
            except Exception as e:
                raise FamilyError(f"{origin} cannot be loaded: {e.__class__.__name__}: {e}") from e
            try:
                self.load(obj, origin)
            except FamilyError:
                raise
            except Exception as e:
                raise FamilyError(f"{origin} failed: {e.__class__.__name__}: {e}") from e


class _Scoped:
    """What a ``register(registry)`` function receives: the registry, stamping its origin."""

    def __init__(self, reg: FamilyRegistry, origin: str) -> None:
        self._reg = reg
        self._origin = origin

    def register(self, family: MetricFamily) -> MetricFamily:
        return self._reg.register(family, origin=family.origin or self._origin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reg, name)


#: origin of the families pytest-ltx ships
BUILTIN = "pytest-ltx"


def _reserved_expect_keys() -> set[str]:
    from pytest_ltx.expect import Expectations

    return set(Expectations.model_fields)


def builtin_registry() -> FamilyRegistry:
    """The families pytest-ltx ships, registered like any provider's."""
    from pytest_ltx.families.builtin import register

    reg = FamilyRegistry()
    reg.load(register, BUILTIN)
    return reg


_DEFAULT: FamilyRegistry | None = None
_ACTIVE: list[FamilyRegistry] = []


def default_registry() -> FamilyRegistry:
    """Built-ins plus the entry-point group (loaded once per process)."""
    global _DEFAULT
    if _DEFAULT is None:
        reg = builtin_registry()
        reg.load_entry_points()
        _DEFAULT = reg
    return _DEFAULT


def registry() -> FamilyRegistry:
    """The registry in force (see the module docs)."""
    return _ACTIVE[-1] if _ACTIVE else default_registry()


class activate:
    """Make ``reg`` the registry in force until :meth:`close` (the plugin does this for a pytest run; also
    a context manager)."""

    def __init__(self, reg: FamilyRegistry) -> None:
        self.reg = reg
        _ACTIVE.append(reg)

    def close(self) -> None:
        if self.reg in _ACTIVE:
            # remove this one (the last occurrence), whatever was pushed after it
            for i in range(len(_ACTIVE) - 1, -1, -1):
                if _ACTIVE[i] is self.reg:
                    del _ACTIVE[i]
                    break

    def __enter__(self) -> FamilyRegistry:
        return self.reg

    def __exit__(self, *exc: object) -> None:
        self.close()


def activate_for_run(config: Any) -> FamilyRegistry:
    """The plugin's part: this run's registry = the default one plus what ``pytest_ltx_register_families``
    implementations add; in force until :func:`deactivate_for_run`. A broken family is a usage error."""
    import pytest

    try:
        reg = default_registry().copy()
        config.hook.pytest_ltx_register_families(registry=reg)
    except FamilyError as e:
        raise pytest.UsageError(f"pytest-ltx: {e}") from e
    config.stash[_run_key()] = activate(reg)
    return reg


def deactivate_for_run(config: Any) -> None:
    a = config.stash.get(_run_key(), None)
    if a is not None:
        a.close()
        del config.stash[_run_key()]


_RUN_KEY: list[Any] = []


def _run_key() -> Any:
    if not _RUN_KEY:
        import pytest

        _RUN_KEY.append(pytest.StashKey[activate]())
    return _RUN_KEY[0]
