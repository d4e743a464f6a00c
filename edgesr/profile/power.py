"""Power and energy per frame through pluggable probes.

The probes and the sampler live in :mod:`edgesr.profile.minimal`, because the device-side
profiler needs them on a Jetson with nothing but numpy installed; this module is their home
inside edgesr: the same classes, plus lookup and auto-detection that raise edgesr's errors.

Probes (``--power NAME``):

* ``ina3221``    Jetson INA3221, hwmon driver (JetPack 5/6): ``in{N}_label``, ``in{N}_input``
                 (mV), ``curr{N}_input`` (mA) under ``/sys/bus/i2c/drivers/ina3221/*/hwmon/*``.
* ``ina3221x``   Jetson INA3221, NVIDIA IIO driver (JetPack 4): ``rail_name_{N}``,
                 ``in_power{N}_input`` (mW) under ``/sys/bus/i2c/drivers/ina3221x/*/iio:device*``.
* ``tegrastats`` Jetson rails parsed from ``tegrastats --interval N`` (every JetPack's format).
* ``nvml``       NVIDIA GPU board power/energy through nvidia-ml-py.
* ``rapl``       CPU package energy from ``/sys/class/powercap/intel-rapl:N`` (wrap-around safe).

Without a usable sensor, power is reported as not measured, with the reason: never invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgesr.profile.errors import edgesr_errors
from edgesr.profile.minimal import (
    INPUT_RAILS,
    PROBES,
    Ina3221HwmonProbe,
    Ina3221IioProbe,
    NvmlProbe,
    PowerProbe,
    PowerSampler,
    RaplProbe,
    TegrastatsProbe,
    integrate,
    make_probe,
    measure_idle,
    not_measured,
    parse_tegrastats,
    select_probe,
)

__all__ = [
    "INPUT_RAILS",
    "PROBES",
    "Ina3221HwmonProbe",
    "Ina3221IioProbe",
    "NvmlProbe",
    "PowerProbe",
    "PowerSampler",
    "RaplProbe",
    "TegrastatsProbe",
    "detect_probe",
    "integrate",
    "make_probe",
    "measure_idle",
    "not_measured",
    "parse_tegrastats",
    "probe_table",
]


def detect_probe(
    spec: str = "auto",
    *,
    root: str | Path = "/",
    gpu: bool = False,
    rail: str | None = None,
    interval_ms: int = 100,
) -> tuple[PowerProbe | None, str]:
    """``auto``, ``none`` or a probe name -> (probe or None, why none). A named probe that is
    unusable, or a present sensor that cannot be read, raises DataError (ConfigError for an
    unknown name)."""
    with edgesr_errors():
        return select_probe(spec, root=root, gpu=gpu, rail=rail, interval_ms=interval_ms)


def probe_table(*, root: str | Path = "/") -> list[dict[str, Any]]:
    """Every probe with whether it works here and why not (``edgesr profile --power list``)."""
    rows = []
    for name in PROBES:
        probe = make_probe(name, root=root)
        try:
            ok = probe.available()
            reason = "" if ok else probe.reason
        except Exception as exc:  # a present but unreadable sensor: show it, don't stop
            ok, reason = False, str(exc)
        rows.append({"probe": name, "available": ok, "source": probe.source, "detail": reason})
        probe.close()
    return rows
