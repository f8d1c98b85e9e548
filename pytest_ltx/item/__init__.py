"""One clip item's life, apart from pytest: its identity (:class:`ItemKey`), what it may use
(:class:`ItemContext`) and the pipeline obtain → evaluate → compare with the baseline → outcomes →
result (``pipeline.py``). ``collect.LtxItem`` is a thin pytest adapter over it."""

from pytest_ltx.item.context import ItemContext, ProjectModels, Stores
from pytest_ltx.item.key import ItemKey

__all__ = ["ItemContext", "ItemKey", "ProjectModels", "Stores"]
