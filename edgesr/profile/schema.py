"""The ``edgesr.profile/1`` document: what a profile holds, reading one, and model identity.

This is all of :mod:`edgesr.profile` that ``edgesr check`` needs, so check depends on the
document and never on the profiler. The schema name and the identity fields are defined in the
device profiler :mod:`edgesr.profile.minimal` (which must stand alone, importing nothing from
edgesr) and imported from there, so both profilers and the checker agree on them.

A profile records the model's identity (path, sha256, the edgesr metadata: recipe,
recipe_hash, scale, colour, precision), backend, frame size, threads, runs, latency statistics,
power (measured, or ``{"measured": false, "reason": ...}``) and the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgesr.errors import DataError
from edgesr.profile.errors import edgesr_errors
from edgesr.profile.minimal import SCHEMA, model_identity, utc_now

__all__ = ["SCHEMA", "identify", "load_profile_json", "utc_now", "validate_profile"]

_REQUIRED = {
    "model": ("sha256", "file_bytes"),
    "input": ("size", "batch"),
    "latency": ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_fps"),
    "power": ("measured",),
}


def validate_profile(doc: Any, source: str = "profile") -> dict[str, Any]:
    """Check that ``doc`` is an ``edgesr.profile/1`` document; DataError naming what is wrong."""
    if not isinstance(doc, dict):
        raise DataError(f"{source}: a profile must be a JSON object.")
    schema = doc.get("schema")
    if schema != SCHEMA:
        hint = (
            "written by a newer edgesr; upgrade"
            if isinstance(schema, str) and schema.startswith("edgesr.profile/")
            else "not an edgesr profile; write one with `edgesr profile --json`"
        )
        raise DataError(f"{source}: schema {schema!r} is not {SCHEMA!r} ({hint}).")
    for section, keys in _REQUIRED.items():
        part = doc.get(section)
        missing = [k for k in keys if not isinstance(part, dict) or k not in part]
        if missing:
            raise DataError(
                f"{source}: '{section}' lacks {', '.join(missing)}; the file is damaged."
            )
    if "backend" not in doc:
        raise DataError(f"{source}: 'backend' is missing; the file is damaged.")
    if not doc["power"]["measured"] and "reason" not in doc["power"]:
        raise DataError(f"{source}: power is not measured but no reason is given.")
    return doc


def load_profile_json(path: str | Path) -> dict[str, Any]:
    from edgesr.outputs import read_json

    return validate_profile(read_json(path, what="results file"), str(path))


def identify(model: str | Path) -> dict[str, Any]:
    """The model's identity: path, size, sha256 and its edgesr metadata."""
    path = Path(model)
    with edgesr_errors():
        if path.is_dir() or path.suffix.lower() == ".safetensors":
            from edgesr.modelio import read_info, resolve_weights

            path = resolve_weights(path)
            info = read_info(path)
            meta = {
                "edgesr.recipe": info.recipe,
                "edgesr.recipe_hash": info.recipe_hash,
                "edgesr.scale": str(info.scale),
                "edgesr.color": "y_bt601" if info.color == "y" else "rgb",
                "edgesr.precision": info.extra.get("precision", "fp32"),
                "edgesr.arch": info.arch,
            }
            return model_identity(path, metadata=meta)
        return model_identity(path)
