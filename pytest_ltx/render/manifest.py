"""Diffing render manifests: what changed in the pipeline between a baseline and this run.

A render manifest (built by ``LTX2Renderer.manifest``) lists the pipeline class, each component's class
and config digest, the scheduler config, LoRAs, and every argument of every stage after defaults. When
a baseline was made from another manifest, :func:`manifest_changes` names each difference and
:func:`format_changes` writes one line like
``diffusers 0.42.1 → 0.43.0: base.stg_scale 1.0 → 0.0; scheduler.shift 2.05 → 2.2``.
Pure Python: no torch, no diffusers.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["flatten_manifest", "manifest_changes", "format_changes"]

#: keys whose change is noise in a diff (they restate other keys)
_SKIP = ("transformer_passes",)


def flatten_manifest(m: Mapping[str, Any]) -> dict[str, Any]:
    """``{"stages": [{"name": "base", "args": {"stg_scale": 1}}]}`` → ``{"base.stg_scale": 1}``: stage
    arguments under the stage's name, everything else by its dotted path; lists stay values."""
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        else:
            out[prefix] = v

    for key, val in m.items():
        if key == "stages" and isinstance(val, list):
            for st in val:
                name = str(st.get("name", "?")) if isinstance(st, Mapping) else "?"
                for k, x in (st.items() if isinstance(st, Mapping) else ()):
                    if k == "name":
                        continue
                    walk(name if k == "args" else f"{name}.{k}", x)
        elif key == "versions" and isinstance(val, Mapping):
            for k, x in val.items():
                out[f"versions.{k}"] = x
        elif key not in _SKIP:
            walk(key, val)
    return {k: v for k, v in out.items() if not k.endswith(_SKIP)}


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and len(v) > 6:
        return "[" + ", ".join(_short(x) for x in v[:3]) + f", … ({len(v)} values)]"
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if v is None:
        return "unset"
    return str(v)


def manifest_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """One ``"key old → new"`` per difference, library versions first; [] when equal, when only library
    versions differ (the pipeline did not change) or when either is absent."""
    if not old or not new:
        return []
    a, b = flatten_manifest(old), flatten_manifest(new)
    versions, rest = [], []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if k.startswith("versions."):
            versions.append(f"{k.split('.', 1)[1]} {_short(va)} → {_short(vb)}")
        else:
            rest.append(f"{k} {_short(va)} → {_short(vb)}")
    # versions alone are the environment's news (reported as such); here they explain a pipeline change
    return versions + rest if rest else []


def format_changes(changes: list[str], limit: int = 12) -> str:
    """``"diffusers 0.42 → 0.43: base.stg_scale 1 → 0; …"``: version changes lead, the rest follow."""
    if not changes:
        return ""
    versions = [c for c in changes if c.split(" ", 1)[0] in ("diffusers", "torch", "transformers", "peft")]
    rest = [c for c in changes if c not in versions]
    shown = rest[:limit]
    more = f"; (+{len(rest) - limit} more)" if len(rest) > limit else ""
    head = ", ".join(versions)
    body = "; ".join(shown) + more
    if head and body:
        return f"{head}: {body}"
    return head or body
