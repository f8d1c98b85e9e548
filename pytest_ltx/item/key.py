"""The identity of one clip item: which spec file, which clip, which variant.

One :class:`ItemKey` names an item everywhere: its pytest node id (``specs/a.yaml::clip[seed=0]``), its
golden-baseline key (``specs/a/clip[seed=0]``, the folder under ``baselines/``), the item name results.json
and the report show, and the spec/preset parts the end of a session judges unused baselines by. Nothing
else builds these strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["ItemKey", "SPEC_SUFFIXES", "spec_relpath"]

#: a clip spec is a YAML file
SPEC_SUFFIXES = (".yaml", ".yml")


def spec_relpath(path: Path | str, rootdir: Path | str) -> str:
    """A spec file's path relative to the rootdir (posix); its absolute posix path when it lies outside."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path(rootdir).resolve()).as_posix()
    except ValueError:
        return p.as_posix()


@dataclass(frozen=True, order=True)
class ItemKey:
    """``spec``: the spec file relative to the rootdir (posix, with its suffix); ``name``: the item name
    (``clip_id[parts,seed=N,preset=P]``, see ``spec/items.item_name``)."""

    spec: str
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("item name is empty")

    # -- building ---------------------------------------------------------------------------------------
    @classmethod
    def of(cls, spec_path: Path | str, name: str, rootdir: Path | str) -> "ItemKey":
        """The key of item ``name`` of the spec file at ``spec_path`` (absolute or rootdir-relative)."""
        p = Path(spec_path)
        return cls(spec_relpath(p if p.is_absolute() else Path(rootdir) / p, rootdir), name)

    @classmethod
    def from_nodeid(cls, nodeid: str) -> "ItemKey | None":
        """The key of a clip item's node id; None for any other test (a Python test, a parametrized id)."""
        path, sep, name = nodeid.partition("::")
        if not sep or not path.endswith(SPEC_SUFFIXES) or "::" in name or "/" in name or not name:
            return None
        return cls(path, name)

    # -- what it names ----------------------------------------------------------------------------------
    @property
    def nodeid(self) -> str:
        """The pytest node id of the item (for a spec file under the rootdir)."""
        return f"{self.spec}::{self.name}"

    @property
    def spec_stem(self) -> str:
        """The spec path without its suffix: the baseline folder of the spec file's items."""
        posix = PurePosixPath(self.spec)
        return str(posix.with_suffix("")) if posix.suffix in SPEC_SUFFIXES else self.spec

    @property
    def baseline(self) -> str:
        """The golden-baseline key: ``"<spec path without .yaml>/<item name>"``, stable across machines."""
        return f"{self.spec_stem}/{self.name}"

    @property
    def clip_id(self) -> str:
        return self.name.split("[", 1)[0]

    @property
    def preset(self) -> str | None:
        """The preset part of the name (``hero[seed=0,preset=draft]`` → ``draft``)."""
        from pytest_ltx.spec.items import preset_of

        return preset_of(self.name)

    def renamed(self, name: str) -> "ItemKey":
        """The same spec file's item under another name (a legacy positional name, say)."""
        return ItemKey(self.spec, name)

    @staticmethod
    def split_baseline(baseline_key: str) -> tuple[str, str]:
        """A baseline key's (spec stem, item name): item names hold no ``/``."""
        stem, _, name = baseline_key.rpartition("/")
        return stem, name

