"""Minimal-dependency profiler: one file, Python stdlib + numpy + ONNX Runtime or TensorRT.

Copy this file alone to a device that has no torch (a Jetson, a board image, a phone shell) and
run it there; check the JSON it writes on the workstation with ``edgesr check --results``::

    python3 minimal.py --model sr.onnx --size 270x480 --runs 100 --json device.json
    python3 minimal.py --model sr.engine --size 270x480 --json device.json      # TensorRT

It is also ``python -m edgesr.profile.minimal``. The full profiler (``edgesr profile``) imports
its core from here (statistics, model identity, environment, power probes and the energy
sampler, the result schema, the options), so both write the same ``edgesr.profile/1`` JSON.
``edgesr.profile.tensorrt_runner`` wraps its TensorRT engine code as an edgesr runner. Keep this file free of ``edgesr``
imports and of any package beyond numpy (ONNX Runtime, TensorRT, the CUDA bindings and
nvidia-ml-py are imported only when used).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import glob
import hashlib
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "edgesr.profile/1"
TOOL = "edgesr.profile.minimal"

# --------------------------------------------------------------------------------------------
# Errors: the same exit codes as edgesr's taxonomy (the full profiler maps them onto it).


class ProfileError(Exception):
    """Base class of the profiler's own errors; the message says what to do."""

    exit_code = 1


class UsageError(ProfileError):
    exit_code = 2


class SensorError(ProfileError):
    """A power sensor is present but cannot be read (or a requested one is absent)."""

    exit_code = 3


class ModelLoadError(ProfileError):
    exit_code = 4


class MissingPackage(ProfileError):
    exit_code = 6


def _import(module: str, *, purpose: str, install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPackage(
            f"{purpose} needs the '{module}' package, which is not importable ({exc}). "
            f"Install it with: {install}"
        ) from exc


# --------------------------------------------------------------------------------------------
# Statistics


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """``'270x480'`` (height x width of the LR frame) or a pair of ints."""
    if isinstance(text, str):
        parts = re.split(r"[xX,]", text.strip())
        try:
            h, w = (int(p) for p in parts)
        except ValueError:
            raise UsageError(
                f"frame size '{text}' must be HEIGHTxWIDTH in pixels, e.g. 270x480."
            ) from None
    else:
        h, w = (int(v) for v in text)
    if h < 1 or w < 1:
        raise UsageError(f"frame size {h}x{w} must be positive.")
    return h, w


def summarize_times(times_s: Sequence[float], *, batch: int = 1) -> dict[str, float | int]:
    """Percentiles (numpy's linear interpolation), mean, population std, min/max, throughput."""
    if not len(times_s):
        raise UsageError("no timed runs to summarise; use at least --runs 1.")
    ms = np.asarray(times_s, dtype=np.float64) * 1000.0
    mean = float(ms.mean())
    return {
        "runs": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": mean,
        "std_ms": float(ms.std()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        # Sustained rate: frames over the whole timed window, not 1/p50.
        "throughput_fps": 1000.0 * batch / mean if mean > 0 else 0.0,
    }


# --------------------------------------------------------------------------------------------
# Model identity: what was measured, so results can be matched to a model on another machine.


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, read from the protobuf directly (no onnx package).

    Walks the top-level ModelProto fields only: the graph (field 7) is skipped by length, so
    this costs one read of the file whatever its size.
    """
    path = Path(path)
    try:
        buf = memoryview(path.read_bytes())
    except OSError as exc:
        raise ModelLoadError(f"cannot read model {path}: {exc}") from exc
    props: dict[str, str] = {}
    seen_graph = False
    pos = 0
    try:
        while pos < len(buf):
            key, pos = _varint(buf, pos)
            field, wire = key >> 3, key & 7
            if field == 0:
                raise ValueError("field number 0")
            if wire == 0:
                _, pos = _varint(buf, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(buf, pos)
                if pos + size > len(buf):
                    raise ValueError("length past the end of the file")
                if field == 7:
                    seen_graph = True
                elif field == 14:  # StringStringEntryProto {1: key, 2: value}
                    entry, k, v, p = buf[pos : pos + size], "", "", 0
                    while p < len(entry):
                        tag, p = _varint(entry, p)
                        n, p = _varint(entry, p)
                        text = bytes(entry[p : p + n]).decode("utf-8", "replace")
                        k, v = (text, v) if tag >> 3 == 1 else (k, text)
                        p += n
                    props[k] = v
                pos += size
            else:
                raise ValueError(f"wire type {wire}")
            if pos > len(buf):
                raise ValueError("truncated field")
    except ValueError as exc:
        raise ModelLoadError(
            f"{path} is not a valid ONNX file ({exc}); export it again with `edgesr export`."
        ) from exc
    if not seen_graph:
        raise ModelLoadError(
            f"{path} is not an ONNX model (no graph); export it again with `edgesr export`."
        )
    return props


ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def engine_sidecar(path: str | Path) -> Path:
    """Where an engine's edgesr metadata lives: ``model.engine`` -> ``model.engine.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


#: The ``<engine>.json`` sidecar contract, shared by every producer (``build_engine``, the
#: generated ``device/build_engine.sh``, ``deploy/jetson/build_engine.sh``) and consumer (this
#: file, libedgesr's TensorRT backend, ``deploy/runtime/src/meta.c``): a JSON object whose
#: top-level ``scale`` (int 1..16) and ``color`` (``y_bt601`` | ``rgb``) are required, with
#: ``precision``, ``recipe``, ``onnx_sha256`` (when known) and the source ONNX's full
#: ``metadata`` map beside them. Producers may add keys; consumers ignore the ones they do not
#: know.
SIDECAR_KEYS = ("scale", "color", "precision", "recipe", "onnx_sha256", "metadata")
SIDECAR_COLORS = ("y_bt601", "rgb")
SIDECAR_MAX_SCALE = 16  # ESR_MAX_SCALE in deploy/runtime/src/internal.h


def engine_sidecar_dict(
    metadata: dict[str, str], *, precision: str, onnx_sha256: str | None = None
) -> dict[str, Any]:
    """The sidecar (see :data:`SIDECAR_KEYS`) of an engine built from an ONNX file with
    ``metadata`` (its ``metadata_props``) in ``precision``; ModelLoadError if the ONNX lacks a
    usable ``edgesr.scale`` / ``edgesr.color`` (an engine without them would be refused)."""
    meta = {str(k): str(v) for k, v in metadata.items()}
    scale_text = meta.get("edgesr.scale", "")
    if not (scale_text.isdigit() and 1 <= int(scale_text) <= SIDECAR_MAX_SCALE):
        raise ModelLoadError(
            f"edgesr.scale {scale_text!r} is not an integer in 1..{SIDECAR_MAX_SCALE}; "
            "export the ONNX with `edgesr export`."
        )
    color = {"y": "y_bt601"}.get(meta.get("edgesr.color", ""), meta.get("edgesr.color", ""))
    if color not in SIDECAR_COLORS:
        raise ModelLoadError(
            f"edgesr.color {meta.get('edgesr.color', '')!r} is not one of "
            f"{', '.join(SIDECAR_COLORS)}; export the ONNX with `edgesr export`."
        )
    out: dict[str, Any] = {
        "scale": int(scale_text),
        "color": color,
        "precision": str(precision),
        "recipe": meta.get("edgesr.recipe", ""),
    }
    if onnx_sha256:
        out["onnx_sha256"] = str(onnx_sha256)
    out["metadata"] = meta
    return out


def read_engine_metadata(path: str | Path) -> dict[str, str]:
    """``edgesr.*`` metadata of a TensorRT engine from the JSON sidecar the engine builder
    writes beside it (empty if none): the source ONNX's metadata, with the engine's own
    precision and the sha256 of the ONNX it was built from as ``edgesr.source_sha256``.

    Reads the :data:`SIDECAR_KEYS` format (top-level ``scale``/``color``/``recipe`` win over
    the ``metadata`` copy, as they are what libedgesr reads), older sidecars with only
    ``metadata`` and flat ``{"scale": 4, "color": "y_bt601"}`` ones."""
    sidecar = engine_sidecar(path)
    if not sidecar.is_file():
        return {}
    try:
        raw = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"engine metadata {sidecar} is unreadable ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"engine metadata {sidecar} is not a JSON object.")
    inner = raw.get("metadata")
    meta = dict(inner) if isinstance(inner, dict) else dict(raw)
    source = raw.get("source_onnx_sha256") or raw.get("onnx_sha256")
    if source and "edgesr.source_sha256" not in meta:
        meta["edgesr.source_sha256"] = source
    if isinstance(raw.get("precision"), str):  # what the engine runs in, not the ONNX
        meta["edgesr.precision"] = raw["precision"]
    for key in ("scale", "color", "recipe"):
        value = raw.get(key)
        if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value):
            meta[f"edgesr.{key}"] = str(value)
    return {str(k): str(v) for k, v in meta.items() if not isinstance(v, (dict, list))}


def model_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt-engine"
    if suffix == ".safetensors":
        return "safetensors"
    return suffix.lstrip(".") or "unknown"


def model_identity(path: str | Path, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Path, size, sha256 and the edgesr metadata (recipe, recipe_hash, scale, colour, precision)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model {path} does not exist (or is not a file).")
    fmt = model_format(path)
    if metadata is None:
        if fmt == "onnx":
            metadata = read_onnx_metadata(path)
        elif fmt == "tensorrt-engine":
            metadata = read_engine_metadata(path)
        else:
            metadata = {}
    edgesr = {k[len("edgesr.") :]: v for k, v in metadata.items() if k.startswith("edgesr.")}
    scale = edgesr.get("scale")
    return {
        "path": str(path.resolve()),
        "name": path.name,
        "format": fmt,
        "file_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "recipe": edgesr.get("recipe"),
        "recipe_hash": edgesr.get("recipe_hash"),
        "scale": int(scale) if scale and scale.isdigit() else None,
        "color": edgesr.get("color"),
        "precision": edgesr.get("precision"),
        # An engine records the sha256 of the ONNX it was built from, so device results of
        # the engine can be checked against that ONNX.
        "source_sha256": edgesr.get("source_sha256"),
        "metadata": edgesr,
    }


# --------------------------------------------------------------------------------------------
# Environment


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions, read from package metadata (the packages are not imported)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            module = sys.modules.get(name.replace("-", "_"))
            version = getattr(module, "__version__", None)
            if version:  # e.g. Jetson's apt-installed tensorrt has no dist-info
                out[name] = str(version)
    return out


def cpu_model(root: Path) -> str:
    text = _read(root, "proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


def jetson_power_mode(root: Path) -> dict[str, Any] | None:
    """nvpmodel's active mode (``/var/lib/nvpmodel/status``) and its name from nvpmodel.conf."""
    status = _read(root, "var/lib/nvpmodel/status")
    if not status:
        return None
    m = re.search(r"pmode:\s*(\d+)", status)
    if not m:
        return {"raw": status.strip()}
    mode = int(m.group(1))
    name = None
    conf = _read(root, "etc/nvpmodel.conf") or ""
    for line in conf.splitlines():
        if line.lstrip().startswith("#"):
            continue
        hit = re.search(rf"<\s*POWER_MODEL\s+ID={mode}\s+NAME=([^\s>]+)", line)
        if hit:
            name = hit.group(1)
            break
    return {"id": mode, "name": name}


def collect_environment(
    *, threads: int | None = None, root: str | Path = "/", extra_packages: Sequence[str] = ()
) -> dict[str, Any]:
    """Where the numbers were taken: CPU, OS, board and power mode, library versions, load."""
    root = Path(root)
    env: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": cpu_model(root),
        "logical_cpus": os.cpu_count(),
        "threads_requested": threads,
        "packages": package_versions(
            (
                "numpy",
                "onnxruntime",
                "onnxruntime-gpu",
                "tensorrt",
                "cuda-python",
                "nvidia-ml-py",
                *extra_packages,
            )
        ),
    }
    with contextlib.suppress(AttributeError, OSError):
        env["usable_cpus"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(AttributeError, OSError):
        env["load_average"] = [round(x, 2) for x in os.getloadavg()]
    thread_vars = {
        k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
    }
    if thread_vars:
        env["thread_env"] = thread_vars
    os_release = _read(root, "etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', os_release, re.MULTILINE)
    if m:
        env["os"] = m.group(1)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", _read(root, "proc/meminfo") or "", re.MULTILINE)
    if mem:
        env["memory_gib"] = round(int(mem.group(1)) / 2**20, 1)
    # Power/performance mode, where the platform exposes one.
    power_mode: dict[str, Any] = {}
    governor = _read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        power_mode["cpu_governor"] = governor.strip()
    profile = _read(root, "sys/firmware/acpi/platform_profile")
    if profile:
        power_mode["platform_profile"] = profile.strip()
    board = _read(root, "proc/device-tree/model")
    if board:
        env["board"] = board.strip("\x00\n ")
    l4t = _read(root, "etc/nv_tegra_release")
    if l4t:
        env["l4t"] = l4t.splitlines()[0].lstrip("# ").strip()
    nvp = jetson_power_mode(root)
    if nvp:
        power_mode["nvpmodel"] = nvp
    env["power_mode"] = power_mode or None
    return env


# --------------------------------------------------------------------------------------------
# Power probes


def read_number(path: Path) -> float:
    """One number from a sysfs file; anything else is a SensorError naming the file."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise SensorError(f"cannot read power sensor file {path} ({exc}).") from exc
    try:
        return float(text)
    except ValueError:
        raise SensorError(
            f"power sensor file {path} holds {text[:40]!r}, not a number; the sensor driver is "
            "misbehaving (pass --power none to profile without power)."
        ) from None


def _probe_readable(path: Path) -> str:
    """'' if ``path`` can be read; 'permission' if only root may; raises for anything else."""
    try:
        read_number(path)
    except SensorError as exc:
        if isinstance(exc.__cause__, PermissionError):
            return "permission"
        raise
    return ""


# Rails that carry the whole module's input, in preference order; without one, all rails are
# summed (e.g. AGX Xavier/Orin, whose rails split the module's supply).
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")


class PowerProbe:
    """One power or energy sensor. ``available()`` says whether it can be used here (and sets
    ``reason`` when not); ``counter`` probes report a cumulative ``read_energy_j()``, the others
    an instantaneous ``read_power_w()`` that the sampler integrates."""

    name = ""
    counter = False

    def __init__(self) -> None:
        self.reason = ""
        self.source = ""
        self.rail = ""

    def available(self) -> bool:
        raise NotImplementedError

    def open(self) -> None:
        """Start whatever the readings need (a subprocess, a library session)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> PowerProbe:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read_rails_w(self) -> dict[str, float]:
        return {self.rail or self.name: self.read_power_w()}

    def total_w(self, rails: dict[str, float]) -> float:
        return float(sum(rails.values()))

    def read_power_w(self) -> float:
        raise NotImplementedError

    def read_energy_j(self) -> float:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"probe": self.name, "source": self.source, "rail": self.rail}


class _RailProbe(PowerProbe):
    """Shared rail selection for the multi-channel INA3221 probes and tegrastats."""

    def __init__(self, rail: str | None = None) -> None:
        super().__init__()
        self.wanted = rail
        self.rails: list[str] = []
        self.selected: list[str] = []

    def _select(self, names: Sequence[str]) -> bool:
        self.rails = list(names)
        if self.wanted:
            chosen = [n for n in names if n.lower() == self.wanted.lower()]
            if not chosen:
                self.reason = f"rail '{self.wanted}' not found; rails here: {', '.join(names)}"
                return False
        else:
            chosen = next(([n] for n in INPUT_RAILS if n in names), list(names))
        self.selected = chosen
        self.rail = chosen[0] if len(chosen) == 1 else "sum(" + "+".join(chosen) + ")"
        return True

    def total_w(self, rails: dict[str, float]) -> float:
        missing = [n for n in self.selected if n not in rails]
        if missing:
            raise SensorError(
                f"{self.name}: rail(s) {', '.join(missing)} vanished from {self.source}."
            )
        return float(sum(rails[n] for n in self.selected))

    def read_power_w(self) -> float:
        return self.total_w(self.read_rails_w())


class Ina3221HwmonProbe(_RailProbe):
    """Jetson INA3221 through the mainline hwmon driver (JetPack 5/6): per channel N,
    ``in{N}_label``, bus voltage ``in{N}_input`` (mV) and current ``curr{N}_input`` (mA)."""

    name = "ina3221"
    BASE = "sys/bus/i2c/drivers/ina3221"

    def __init__(self, root: str | Path = "/", rail: str | None = None) -> None:
        super().__init__(rail)
        self.base = Path(root) / self.BASE
        self.channels: dict[str, tuple[Path, Path]] = {}

    def available(self) -> bool:
        if not self.base.is_dir():
            self.reason = f"no {self.base}"
            return False
        for label_file in sorted(
            glob.glob(str(self.base / "*" / "hwmon" / "hwmon*" / "in*_label"))
        ):
            label_path = Path(label_file)
            n = label_path.name[2:].split("_")[0]
            try:
                label = label_path.read_text(encoding="ascii", errors="replace").strip()
            except OSError as exc:
                raise SensorError(f"cannot read {label_path} ({exc}).") from exc
            volt, curr = (
                label_path.with_name(f"in{n}_input"),
                label_path.with_name(f"curr{n}_input"),
            )
            # "NC": channel not connected; "sum of shunt voltages" has no current of its own.
            if label == "NC" or not curr.exists() or not volt.exists():
                continue
            if _probe_readable(curr) or _probe_readable(volt):
                self.reason = f"{curr} is readable by root only; run as root or add read permission"
                return False
            if label in self.channels:  # two sensors with a same-named rail (e.g. AGX Orin)
                label = f"{label}@{label_path.parents[2].name}"
            self.channels[label] = (volt, curr)
        if not self.channels:
            self.reason = f"no connected INA3221 channels under {self.base}"
            return False
        self.source = str(self.base)
        return self._select(list(self.channels))

    def read_rails_w(self) -> dict[str, float]:
        return {
            label: read_number(volt) * read_number(curr) / 1e6
            for label, (volt, curr) in self.channels.items()
        }


class Ina3221IioProbe(_RailProbe):
    """Jetson INA3221 through NVIDIA's ``ina3221x`` IIO driver (JetPack 4 / L4T 32):
    ``rail_name_{N}`` and power ``in_power{N}_input`` (mW), N from 0."""

    name = "ina3221x"
    BASE = "sys/bus/i2c/drivers/ina3221x"

    def __init__(self, root: str | Path = "/", rail: str | None = None) -> None:
        super().__init__(rail)
        self.base = Path(root) / self.BASE
        self.channels: dict[str, Path] = {}

    def available(self) -> bool:
        if not self.base.is_dir():
            self.reason = f"no {self.base}"
            return False
        for name_file in sorted(glob.glob(str(self.base / "*" / "iio:device*" / "rail_name_*"))):
            name_path = Path(name_file)
            n = name_path.name.rsplit("_", 1)[1]
            try:
                label = name_path.read_text(encoding="ascii", errors="replace").strip()
            except OSError as exc:
                raise SensorError(f"cannot read {name_path} ({exc}).") from exc
            power = name_path.with_name(f"in_power{n}_input")
            if not power.exists():
                continue
            if _probe_readable(power):
                self.reason = (
                    f"{power} is readable by root only; run as root or add read permission"
                )
                return False
            self.channels[label] = power
        if not self.channels:
            self.reason = f"no ina3221x power channels under {self.base}"
            return False
        self.source = str(self.base)
        return self._select(list(self.channels))

    def read_rails_w(self) -> dict[str, float]:
        return {label: read_number(p) / 1000.0 for label, p in self.channels.items()}


# NAME cur/avg[/max] with mW, W or no unit (JetPack 4 prints bare milliwatts). The lookarounds
# keep memory fields ("RAM 2228/3964MB", "SWAP 0/1982MB (cached 0MB)") out.
_RAIL_RE = re.compile(
    r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(mW|W)?/(\d+(?:\.\d+)?)(mW|W)?"
    r"(?:/(\d+(?:\.\d+)?)(mW|W)?)?(?![\w/.])"
)


def parse_tegrastats(line: str) -> dict[str, float]:
    """Power rails of one tegrastats line, in watts (the instantaneous first value).

    Handles ``VDD_IN 5000mW/5000mW`` (JetPack 5/6), ``POM_5V_IN 1234/1234`` and
    ``GPU 0/0 CPU 311/311`` (JetPack 4, bare mW) and the three-value ``cur/avg/max`` form.
    """
    rails = {}
    for m in _RAIL_RE.finditer(line):
        value, unit = float(m.group(2)), m.group(3) or "mW"
        rails[m.group(1)] = value if unit == "W" else value / 1000.0
    return rails


class TegrastatsProbe(_RailProbe):
    """Jetson rails read from a ``tegrastats --interval N`` subprocess (any JetPack)."""

    name = "tegrastats"

    def __init__(
        self,
        command: Sequence[str] = ("tegrastats",),
        interval_ms: int = 100,
        rail: str | None = None,
        first_line_timeout_s: float = 3.0,
    ) -> None:
        super().__init__(rail)
        self.command = list(command)
        self.interval_ms = int(interval_ms)
        self.timeout = first_line_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._latest: dict[str, float] = {}
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def available(self) -> bool:
        exe = self.command[0]
        if not (shutil.which(exe) or Path(exe).is_file()):
            self.reason = f"{exe} not found on PATH"
            return False
        self.source = " ".join(self.command)
        return True

    def open(self) -> None:
        if self._proc is not None:
            return
        try:
            self._proc = subprocess.Popen(
                [*self.command, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise SensorError(f"cannot start {self.command[0]} ({exc}).") from exc
        self._thread = threading.Thread(target=self._reader, name="tegrastats", daemon=True)
        self._thread.start()
        if not self._ready.wait(max(self.timeout, 5 * self.interval_ms / 1000.0)):
            lines = list(self._lines)
            self.close()
            seen = f"; it printed: {lines[0][:160]!r}" if lines else "; it printed nothing"
            raise SensorError(f"{self.source} reported no power rails{seen}.")
        with self._lock:
            names = list(self._latest)
        if not self._select(names):
            self.close()
            raise SensorError(f"tegrastats: {self.reason}.")

    def _reader(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if len(self._lines) < 5:
                self._lines.append(line.strip())
            rails = parse_tegrastats(line)
            if rails:
                with self._lock:
                    self._latest = rails
                self._ready.set()

    def read_rails_w(self) -> dict[str, float]:
        with self._lock:
            if not self._latest:
                raise SensorError(f"{self.source}: no reading yet.")
            return dict(self._latest)

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


class NvmlProbe(PowerProbe):
    """NVIDIA GPU board power through NVML (package nvidia-ml-py): the total-energy counter
    (Volta and newer) when supported, else sampled power usage."""

    name = "nvml"

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = index
        self.nvml: Any = None
        self.handle: Any = None

    def available(self) -> bool:
        try:
            self.nvml = importlib.import_module("pynvml")
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return False
        try:
            self.nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            self.reason = f"NVML cannot start ({exc}); no NVIDIA driver here?"
            return False
        try:
            self.handle = self.nvml.nvmlDeviceGetHandleByIndex(self.index)
            name = self.nvml.nvmlDeviceGetName(self.handle)
        except Exception as exc:
            self.nvml.nvmlShutdown()
            self.reason = f"NVML has no GPU {self.index} ({exc})"
            return False
        name = name.decode() if isinstance(name, bytes) else str(name)
        self.source = f"NVML GPU {self.index}: {name}"
        self.rail = "GPU board"
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.counter = True
        except Exception:
            try:
                self.nvml.nvmlDeviceGetPowerUsage(self.handle)
            except Exception as exc:
                self.nvml.nvmlShutdown()
                self.reason = f"{self.source} reports neither energy nor power ({exc})"
                return False
        return True

    def read_power_w(self) -> float:
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        except Exception as exc:
            raise SensorError(f"{self.source}: power read failed ({exc}).") from exc

    def read_energy_j(self) -> float:
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        except Exception as exc:
            raise SensorError(f"{self.source}: energy read failed ({exc}).") from exc

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()
            self.handle = None


class RaplProbe(PowerProbe):
    """CPU package energy from Linux powercap RAPL (``intel-rapl:N/energy_uj``, also on AMD).

    The counters wrap at ``max_energy_range_uj``; each read folds the wrap in, so the sampler
    must read more often than one wrap period (tens of seconds at full load).
    """

    name = "rapl"
    counter = True
    BASE = "sys/class/powercap"

    def __init__(self, root: str | Path = "/") -> None:
        super().__init__()
        self.base = Path(root) / self.BASE
        self.zones: dict[str, tuple[Path, float]] = {}
        self._last: dict[str, float] = {}
        self._total_j = 0.0

    def available(self) -> bool:
        tops = [Path(p) for p in sorted(glob.glob(str(self.base / "intel-rapl:*")))]
        tops = [p for p in tops if re.fullmatch(r"intel-rapl:\d+", p.name)]
        if not tops:
            self.reason = f"no {self.base}/intel-rapl:* zones"
            return False
        named = {}
        for zone in tops:
            name = (_read(zone, "name") or zone.name).strip()
            named[name] = zone
        # Packages, not psys: psys covers the packages too, so adding it would count twice.
        chosen = {n: z for n, z in named.items() if n.startswith("package")} or {
            n: z for n, z in named.items() if n == "psys"
        }
        if not chosen:
            self.reason = f"no package or psys zone among {', '.join(named)}"
            return False
        for name, zone in chosen.items():
            energy = zone / "energy_uj"
            if _probe_readable(energy):
                self.reason = (
                    f"{energy} is readable by root only (Linux >= 5.10); run as root, or "
                    f"`sudo chmod a+r {self.base}/intel-rapl:*/energy_uj`"
                )
                return False
            self.zones[name] = (energy, read_number(zone / "max_energy_range_uj") / 1e6)
        self.source = str(self.base)
        self.rail = "+".join(self.zones)
        return True

    def read_energy_j(self) -> float:
        for name, (path, wrap_j) in self.zones.items():
            now = read_number(path) / 1e6
            last = self._last.get(name)
            if last is not None:
                delta = now - last
                if delta < 0:  # the counter wrapped since the last read
                    delta += wrap_j
                self._total_j += delta
            self._last[name] = now
        return self._total_j


PROBES: dict[str, Callable[..., PowerProbe]] = {
    "ina3221": Ina3221HwmonProbe,
    "ina3221x": Ina3221IioProbe,
    "tegrastats": TegrastatsProbe,
    "nvml": NvmlProbe,
    "rapl": RaplProbe,
}


def make_probe(
    name: str, *, root: str | Path = "/", rail: str | None = None, interval_ms: int = 100
) -> PowerProbe:
    if name in ("ina3221", "ina3221x"):
        return PROBES[name](root=root, rail=rail)
    if name == "tegrastats":
        return TegrastatsProbe(interval_ms=interval_ms, rail=rail)
    if name == "nvml":
        return NvmlProbe()
    if name == "rapl":
        return RaplProbe(root=root)
    raise UsageError(
        f"unknown power probe '{name}'; choose auto, none or one of: {', '.join(PROBES)}."
    )


def select_probe(
    spec: str = "auto",
    *,
    root: str | Path = "/",
    gpu: bool = False,
    rail: str | None = None,
    interval_ms: int = 100,
) -> tuple[PowerProbe | None, str]:
    """The probe to use, or (None, why not). ``auto`` tries Jetson rails, then NVML before RAPL
    for GPU backends (RAPL first for CPU ones); a named probe that is unusable is an error."""
    if spec == "none":
        return None, "power measurement disabled (--power none)"
    if spec != "auto":
        probe = make_probe(spec, root=root, rail=rail, interval_ms=interval_ms)
        if not probe.available():
            raise SensorError(f"power probe '{spec}' cannot be used here: {probe.reason}.")
        return probe, ""
    order = ["ina3221", "ina3221x", "tegrastats", *(("nvml", "rapl") if gpu else ("rapl", "nvml"))]
    reasons = []
    for name in order:
        probe = make_probe(name, root=root, rail=rail, interval_ms=interval_ms)
        if probe.available():
            return probe, ""
        reasons.append(f"{name}: {probe.reason}")
    return None, "no usable power sensor (" + "; ".join(reasons) + ")"


class PowerSampler:
    """Integrates energy over a window in a background thread.

    Power probes are sampled every ``interval_s`` and integrated with the trapezoid rule;
    counter probes are differenced (wrap-around handled by the probe). A reading is taken
    synchronously at ``start()`` and at ``halt()`` so the window is covered end to end.
    """

    def __init__(self, probe: PowerProbe, interval_s: float = 0.05) -> None:
        self.probe = probe
        self.interval_s = max(0.001, float(interval_s))
        self._samples: list[tuple[float, float]] = []
        self._rails: list[dict[str, float]] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _take(self) -> None:
        t = time.perf_counter()
        if self.probe.counter:
            self._samples.append((t, self.probe.read_energy_j()))
        else:
            rails = self.probe.read_rails_w()
            self._samples.append((t, self.probe.total_w(rails)))
            self._rails.append(rails)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._take()
            except BaseException as exc:  # surfaced by result(); the window is void
                self._error = exc
                return

    def start(self) -> None:
        self._samples.clear()
        self._rails.clear()
        self._error = None
        self._stop.clear()
        self._take()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """End the window (safe to call twice, and after an error)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._error is None:
            try:
                self._take()
            except BaseException as exc:
                self._error = exc

    def result(self, frames: int) -> dict[str, Any]:
        """Energy, mean/peak power and energy per frame of the halted window."""
        self.halt()
        if self._error is not None:
            if isinstance(self._error, ProfileError):
                raise self._error
            raise SensorError(f"power sampling failed: {self._error}") from self._error
        return integrate(
            self._samples,
            counter=self.probe.counter,
            frames=frames,
            rails=self._rails,
            info={**self.probe.describe(), "interval_ms": round(self.interval_s * 1000, 3)},
        )


def integrate(
    samples: Sequence[tuple[float, float]],
    *,
    counter: bool,
    frames: int,
    rails: Sequence[dict[str, float]] = (),
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Energy over (time, watts) samples (trapezoid) or (time, joules) counter readings."""
    if len(samples) < 2:
        raise SensorError("power sampling needs at least two readings in the window.")
    t = np.asarray([s[0] for s in samples], dtype=np.float64)
    v = np.asarray([s[1] for s in samples], dtype=np.float64)
    window = float(t[-1] - t[0])
    if window <= 0:
        raise SensorError("power sampling window has zero length.")
    dt = np.diff(t)
    if counter:
        energy = float(v[-1] - v[0])
        # Peak over intervals of a reasonable length (a tiny last interval is mostly noise).
        long_enough = dt >= 0.5 * float(np.median(dt))
        powers = np.diff(v)[long_enough] / dt[long_enough]
        peak = float(powers.max()) if powers.size else energy / window
    else:
        energy = float(np.sum((v[1:] + v[:-1]) * 0.5 * dt))
        peak = float(v.max())
    out: dict[str, Any] = {
        "measured": True,
        **(info or {}),
        "method": "energy counter" if counter else "sampled power (trapezoid)",
        "samples": len(samples),
        "window_s": window,
        "frames": frames,
        "energy_j": energy,
        "mean_w": energy / window,
        "peak_w": peak,
        "energy_per_frame_j": energy / frames if frames else None,
    }
    if rails:
        names = list(rails[0])
        out["rails_mean_w"] = {n: float(np.mean([r.get(n, np.nan) for r in rails])) for n in names}
    return out


def not_measured(reason: str) -> dict[str, Any]:
    return {"measured": False, "reason": reason}


# --------------------------------------------------------------------------------------------
# Backends of the minimal profiler (the full one uses edgesr's runners instead)

ONNX_COLORS = {"y_bt601": "y", "y": "y", "rgb": "rgb"}


class OrtModel:
    """An ONNX file on ONNX Runtime, configured like edgesr's OnnxRuntimeRunner."""

    backend = "onnxruntime"

    def __init__(
        self, path: str | Path, *, threads: int | None = None, providers: Sequence[str] = ()
    ) -> None:
        ort = _import(
            "onnxruntime", purpose="profiling an ONNX model", install="pip install onnxruntime"
        )
        self.path = Path(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # Same as edgesr.runtime.runners.ORT_SESSION_CONFIG (this file stands alone): keeps
        # the convs a mixed-precision INT8 model leaves float in float.
        opts.add_session_config_entry(
            "optimization.disable_specified_optimizers", "WeightBiasQuantization"
        )
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=opts,
                providers=list(providers) or ["CPUExecutionProvider"],
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelLoadError(f"{self.path} cannot be loaded by ONNX Runtime ({exc}).") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        channels = inp.shape[1] if len(inp.shape) == 4 else None
        self.color = ONNX_COLORS.get(meta.get("edgesr.color", ""), "")
        if not isinstance(channels, int):
            channels = 1 if self.color == "y" else 3
        self.channels = channels
        self.color = self.color or ("y" if channels == 1 else "rgb")
        scale = meta.get("edgesr.scale", "")
        self.scale = int(scale) if scale.isdigit() else None
        self.detail = {"providers": self.session.get_providers(), "version": ort.__version__}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def close(self) -> None:
        self.session = None


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError as exc:
            raise MissingPackage(
                "running a TensorRT engine needs the CUDA runtime bindings, which are not "
                f"importable ({exc}). Install them with: pip install cuda-python"
            ) from exc
    return cudart


class TrtModel:
    """A serialized TensorRT engine (TensorRT >= 8.5 tensor API) with host<->device copies
    inside the timed call, so its latency means the same as the CPU backends' (output on the
    host). Inputs with dynamic dimensions are re-bound when the frame shape changes."""

    backend = "tensorrt"

    def __init__(self, path: str | Path) -> None:
        self.trt = _import(
            "tensorrt",
            purpose="profiling a TensorRT engine",
            install="JetPack's python3-libnvinfer, or pip install tensorrt",
        )
        self.cudart = _cudart()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"engine {self.path} does not exist.")
        trt = self.trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(
                f"{self.path} is not a TensorRT engine for this TensorRT ({trt.__version__}) and "
                "GPU; engines are not portable: build it on this device."
            )
        if not hasattr(self.engine, "num_io_tensors"):
            raise MissingPackage(f"TensorRT {trt.__version__} is too old; edgesr needs >= 8.5.")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        ins = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        outs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise ModelLoadError(
                f"{self.path}: expected one input and one output, got {ins} -> {outs}."
            )
        self.input_name, self.output_name = ins[0], outs[0]
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        in_shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if len(in_shape) != 4 or in_shape[1] not in (1, 3):
            raise ModelLoadError(f"{self.path}: input shape {in_shape} is not [N,1|3,H,W].")
        self.channels = int(in_shape[1])
        meta = read_engine_metadata(self.path)
        self.color = ONNX_COLORS.get(
            meta.get("edgesr.color", ""), "y" if self.channels == 1 else "rgb"
        )
        self.stream = self._cuda(self.cudart.cudaStreamCreate)
        self._bound: tuple[int, ...] | None = None
        self._buffers: list[Any] = []
        # Scale from the engine itself: bind a legal shape and read the output's.
        probe = in_shape
        if -1 in in_shape:
            probe = tuple(self.engine.get_tensor_profile_shape(self.input_name, 0)[1])
        self._bind(probe)
        self.scale = int(self._out_shape[2] // probe[2])
        self.detail = {"version": trt.__version__, "input_dtype": str(self.in_dtype)}

    def _cuda(self, fn: Any, *args: Any) -> Any:
        result = fn(*args)
        err, rest = result[0], result[1:]
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise ProfileError(f"CUDA call {getattr(fn, '__name__', fn)} failed: {err}.")
        return rest[0] if len(rest) == 1 else (rest or None)

    def _free(self) -> None:
        for ptr in self._buffers:
            self._cuda(self.cudart.cudaFree, ptr)
        self._buffers = []

    def _bind(self, shape: tuple[int, ...]) -> None:
        if shape == self._bound:
            return
        if not self.context.set_input_shape(self.input_name, shape):
            built = tuple(self.engine.get_tensor_shape(self.input_name))
            if -1 in built:
                lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
                allowed = f"its profile allows {tuple(lo)} to {tuple(hi)}"
            else:
                allowed = f"it is built for {built} only"
            raise ModelLoadError(
                f"{self.path} does not accept input shape {shape}; {allowed}. "
                "Rebuild the engine for this frame size."
            )
        self._free()
        self._out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        n_in = int(np.prod(shape)) * self.in_dtype.itemsize
        n_out = int(np.prod(self._out_shape)) * self.out_dtype.itemsize
        self._d_in = self._cuda(self.cudart.cudaMalloc, n_in)
        self._d_out = self._cuda(self.cudart.cudaMalloc, n_out)
        self._buffers = [self._d_in, self._d_out]
        self.context.set_tensor_address(self.input_name, int(self._d_in))
        self.context.set_tensor_address(self.output_name, int(self._d_out))
        self._bound = shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c = self.cudart
        self._bind(tuple(x.shape))
        host_in = np.ascontiguousarray(x, dtype=self.in_dtype)
        host_out = np.empty(self._out_shape, dtype=self.out_dtype)
        h2d, d2h = c.cudaMemcpyKind.cudaMemcpyHostToDevice, c.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._cuda(
            c.cudaMemcpyAsync, self._d_in, host_in.ctypes.data, host_in.nbytes, h2d, self.stream
        )
        if not self.context.execute_async_v3(int(self.stream)):
            raise ProfileError(f"TensorRT failed to run {self.path}.")
        self._cuda(
            c.cudaMemcpyAsync, host_out.ctypes.data, self._d_out, host_out.nbytes, d2h, self.stream
        )
        self._cuda(c.cudaStreamSynchronize, self.stream)
        return host_out.astype(np.float32, copy=False)

    def close(self) -> None:
        if self.stream is not None:
            self._free()
            self._cuda(self.cudart.cudaStreamDestroy, self.stream)
            self.stream = None
        self.context = self.engine = None


def default_backend(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix == ".safetensors" or Path(path).is_dir():
        return "torch"
    raise UsageError(
        f"cannot tell the backend of {path} from its suffix; pass --backend "
        "(onnxruntime for .onnx, tensorrt for .engine/.plan, torch for .safetensors)."
    )


# --------------------------------------------------------------------------------------------
# The measurement


def timed_loop(
    infer: Callable[[np.ndarray], Any],
    frame: np.ndarray,
    *,
    warmup: int,
    runs: int,
    min_seconds: float = 0.0,
    sampler: PowerSampler | None = None,
) -> list[float]:
    """Warm-up calls, then at least ``runs`` timed calls lasting at least ``min_seconds``.

    The sampler's window is exactly the timed calls (warm-up and set-up are outside it).
    """
    for _ in range(warmup):
        infer(frame)
    times: list[float] = []
    if sampler is not None:
        sampler.start()
    try:
        begin = time.perf_counter()
        while len(times) < runs or time.perf_counter() - begin < min_seconds:
            t0 = time.perf_counter()
            infer(frame)
            times.append(time.perf_counter() - t0)
    finally:
        if sampler is not None:
            sampler.halt()
    return times


def measure_idle(probe: PowerProbe, seconds: float, interval_s: float) -> float:
    """Mean power with nothing running, to separate the model's share from the board's."""
    sampler = PowerSampler(probe, interval_s)
    sampler.start()
    time.sleep(seconds)
    return float(sampler.result(frames=0)["mean_w"])


def utc_now() -> str:
    # timezone.utc, not datetime.UTC: devices run Python 3.8 (JetPack 5).
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def build_result(
    *,
    identity: dict[str, Any],
    backend: str,
    backend_detail: dict[str, Any],
    size: tuple[int, int],
    batch: int,
    channels: int,
    scale: int | None,
    threads: int | None,
    warmup: int,
    times_s: Sequence[float],
    power: dict[str, Any],
    environment: dict[str, Any],
    tool: str = TOOL,
    tool_version: str | None = None,
    quality: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``edgesr.profile/1`` document both profilers write."""
    if scale and not identity.get("scale"):
        identity = {**identity, "scale": scale}
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "created": utc_now(),
        "tool": {"name": tool, "version": tool_version},
        "model": identity,
        "backend": backend,
        "backend_detail": backend_detail,
        "input": {
            "size": list(size),
            "batch": batch,
            "channels": channels,
            "dtype": "float32",
            "output_size": [size[0] * scale, size[1] * scale] if scale else None,
        },
        "threads": threads,
        "warmup": warmup,
        "runs": len(times_s),
        "latency": summarize_times(times_s, batch=batch),
        "power": power,
        "environment": environment,
    }
    if quality is not None:
        out["quality"] = quality
    return out


def finish_power(
    sampler: PowerSampler | None, reason: str, frames: int, idle_w: float | None
) -> dict[str, Any]:
    if sampler is None:
        return not_measured(reason)
    power = sampler.result(frames)
    if idle_w is not None:
        power["idle_w"] = idle_w
        power["dynamic_energy_per_frame_j"] = (
            (power["mean_w"] - idle_w) * power["window_s"] / frames
        )
    return power


@dataclasses.dataclass(frozen=True)
class ProfileOptions:
    """How to profile a model: the settings of this script and of ``edgesr profile`` alike.

    ``power`` is ``auto`` (the first usable probe), ``none`` or a probe name; with a probe the
    timed window lasts at least ``min_seconds`` (default 2 s, else 0) so the sensor sees enough
    of it. ``backend`` None picks one by the model's suffix; ``providers`` are ONNX Runtime
    execution providers (default CPU); ``root`` is where /sys and /proc are read from.
    """

    backend: str | None = None
    size: tuple[int, int] = (270, 480)
    batch: int = 1
    threads: int | None = None
    warmup: int = 5
    runs: int = 50
    min_seconds: float | None = None
    power: str = "auto"
    power_rail: str | None = None
    power_interval_s: float = 0.05
    idle_seconds: float = 0.0
    providers: tuple[str, ...] = ()
    root: str | Path = "/"
    seed: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProfileOptions:
        """The options given by ``add_common_arguments`` plus ``--backend``/``--providers``."""
        return cls(
            backend=args.backend,
            size=parse_size(args.size),
            batch=args.batch,
            threads=args.threads,
            warmup=args.warmup,
            runs=args.runs,
            min_seconds=args.min_seconds,
            power=args.power,
            power_rail=args.power_rail,
            power_interval_s=args.power_interval_ms / 1000.0,
            idle_seconds=args.idle_seconds,
            providers=tuple(p for p in (args.providers or "").split(",") if p),
        )


def profile_file(model: str | Path, options: ProfileOptions | None = None) -> dict[str, Any]:
    """Profile an ONNX model (ONNX Runtime) or an engine (TensorRT) with no edgesr installed."""
    o = options or ProfileOptions()
    path = Path(model)
    backend = o.backend or default_backend(path)
    if backend not in ("onnxruntime", "tensorrt"):
        raise UsageError(
            f"the minimal profiler runs onnxruntime or tensorrt, not '{backend}'; use `edgesr profile`."
        )
    identity = model_identity(path)
    net: OrtModel | TrtModel = (
        OrtModel(path, threads=o.threads, providers=o.providers)
        if backend == "onnxruntime"
        else TrtModel(path)
    )
    try:
        gpu = backend == "tensorrt" or any("CUDA" in p or "Tensorrt" in p for p in o.providers)
        probe, reason = select_probe(
            o.power,
            root=o.root,
            gpu=gpu,
            rail=o.power_rail,
            interval_ms=int(o.power_interval_s * 1000),
        )
        frame = np.random.default_rng(o.seed).random(
            (o.batch, net.channels, *o.size), dtype=np.float32
        )
        with probe if probe is not None else contextlib.nullcontext():
            idle_w = (
                measure_idle(probe, o.idle_seconds, o.power_interval_s)
                if probe and o.idle_seconds > 0
                else None
            )
            sampler = PowerSampler(probe, o.power_interval_s) if probe is not None else None
            min_seconds = o.min_seconds
            if min_seconds is None:
                min_seconds = 2.0 if sampler is not None else 0.0
            times = timed_loop(
                net, frame, warmup=o.warmup, runs=o.runs, min_seconds=min_seconds, sampler=sampler
            )
            power_out = finish_power(sampler, reason, len(times) * o.batch, idle_w)
        scale = net.scale
    finally:
        net.close()
    return build_result(
        identity=identity,
        backend=backend,
        backend_detail=net.detail,
        size=o.size,
        batch=o.batch,
        channels=net.channels,
        scale=scale,
        threads=o.threads,
        warmup=o.warmup,
        times_s=times,
        power=power_out,
        environment=collect_environment(threads=o.threads, root=o.root),
    )


# --------------------------------------------------------------------------------------------
# Output and command line


def format_result(result: dict[str, Any]) -> str:
    """A short human summary of a profile document."""
    m, lat, inp, pw = result["model"], result["latency"], result["input"], result["power"]
    tags = [
        f"x{m['scale']}" if m.get("scale") else "",
        m.get("color") or "",
        m.get("precision") or "",
    ]
    recipe = f", recipe {m['recipe']}@{m['recipe_hash']}" if m.get("recipe") else ""
    out_size = inp.get("output_size")
    lines = [
        f"model:      {m['name']} ({' '.join(t for t in tags if t)}{recipe}; sha256 {m['sha256'][:12]})",
        f"backend:    {result['backend']}  threads {result.get('threads') or 'default'}  "
        f"LR {inp['size'][0]}x{inp['size'][1]}"
        + (f" -> {out_size[0]}x{out_size[1]}" if out_size else "")
        + f"  batch {inp['batch']}  {result['warmup']} warm-up + {result['runs']} runs",
        f"latency ms: p50 {lat['p50_ms']:.2f}  p90 {lat['p90_ms']:.2f}  p99 {lat['p99_ms']:.2f}  "
        f"mean {lat['mean_ms']:.2f} ± {lat['std_ms']:.2f}  (min {lat['min_ms']:.2f}, max {lat['max_ms']:.2f})",
        f"throughput: {lat['throughput_fps']:.1f} frames/s",
    ]
    if pw.get("measured"):
        lines.append(
            f"power:      {pw['mean_w']:.2f} W mean, {pw['peak_w']:.2f} W peak, "
            f"{pw['energy_per_frame_j'] * 1000:.1f} mJ/frame ({pw['probe']} {pw['rail']}, "
            f"{pw['samples']} readings over {pw['window_s']:.2f} s)"
        )
        if "idle_w" in pw:
            lines.append(
                f"            idle {pw['idle_w']:.2f} W; above idle "
                f"{pw['dynamic_energy_per_frame_j'] * 1000:.1f} mJ/frame"
            )
    else:
        lines.append(f"power:      not measured: {pw['reason']}")
    env = result["environment"]
    where = [env.get("board") or env.get("cpu"), f"{env.get('logical_cpus')} CPUs"]
    mode = (env.get("power_mode") or {}).get("nvpmodel")
    if mode:
        where.append(f"nvpmodel {mode.get('name') or mode.get('id')}")
    lines.append("device:     " + ", ".join(str(w) for w in where if w))
    if "quality" in result:
        q = result["quality"]
        lines.append(
            f"quality:    PSNR-Y {q['psnr_y']:.2f} dB  SSIM-Y {q['ssim_y']:.4f} on {q['data']}"
        )
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path, *, force: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def add_common_arguments(p: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    """Options shared by this script and ``edgesr profile``."""
    p.add_argument(
        "--model", required=model_required, help="model file (.onnx, .engine/.plan, ...)"
    )
    p.add_argument("--size", default="270x480", help="LR frame HEIGHTxWIDTH (default 270x480)")
    p.add_argument("--batch", type=int, default=1, help="frames per call (default 1)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the runtime's)")
    p.add_argument("--runs", type=int, default=50, help="timed runs, at least (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default 5)")
    p.add_argument(
        "--min-seconds",
        type=float,
        help="keep timing until this long has passed (default 2 when power is measured, else 0)",
    )
    p.add_argument(
        "--power",
        default="auto",
        help=f"power probe: auto (default), none, or one of {', '.join(PROBES)}",
    )
    p.add_argument("--power-rail", help="rail to report (default: the input rail, else the sum)")
    p.add_argument(
        "--power-interval-ms", type=float, default=50.0, help="sampling period (default 50)"
    )
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=0.0,
        help="measure idle power this long first, to report energy above idle",
    )
    p.add_argument("--json", help="write the edgesr.profile/1 results to this file")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def check_counts(args: argparse.Namespace) -> None:
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        raise UsageError("--runs and --batch must be at least 1 and --warmup not negative.")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1.")
    if args.power_interval_ms <= 0 or args.idle_seconds < 0:
        raise UsageError("--power-interval-ms must be positive and --idle-seconds not negative.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edgesr-profile-minimal",
        description="Profile an SR model with only numpy + onnxruntime/tensorrt installed.",
    )
    add_common_arguments(parser)
    parser.add_argument("--backend", choices=("onnxruntime", "tensorrt"), help="default: by suffix")
    parser.add_argument(
        "--providers", help="ONNX Runtime execution providers, comma-separated (default CPU)"
    )
    args = parser.parse_args(argv)
    try:
        check_counts(args)
        if args.json and Path(args.json).exists() and not args.force:
            raise UsageError(f"{args.json} already exists; pass --force to overwrite it.")
        result = profile_file(args.model, ProfileOptions.from_args(args))
        print(format_result(result))
        if args.json:
            write_json(result, args.json, force=args.force)
            print(f"wrote {args.json}")
    except ProfileError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
