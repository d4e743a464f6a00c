"""Latency of any runner, measured the same way for every backend.

Warm-up runs first (lazy initialisation, caches, CPU frequency ramp), then timed runs; the
statistics are over the per-call wall times that ``BaseRunner.infer`` records. Quote the
median: shared machines are noisy, and the mean is pulled by outliers. The loop and the
statistics are the device profiler's (:mod:`edgesr.profile.minimal`), so a number taken on a
Jetson with the minimal profiler means the same as one taken here.

:func:`time_interleaved` compares models: timed one after another, a busy phase of the machine
lands on one model and not the next, and their ratio is wrong. Interleaved in rounds, each
model in a fresh runner, the per-round ratios see the same conditions; their spread, and the
CPU time other processes took meanwhile (from ``/proc``), say whether the ratios can be trusted.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.profile.minimal import PowerSampler, summarize_times, timed_loop
from edgesr.runtime.runners import BaseRunner


@dataclass(frozen=True)
class LatencyStats:
    size: tuple[int, int]
    batch: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float = 0.0

    @property
    def fps(self) -> float:
        """Frames per second at the median latency."""
        return 1000.0 * self.batch / self.p50_ms

    @property
    def throughput_fps(self) -> float:
        """Sustained frames per second over the timed window (from the mean)."""
        return 1000.0 * self.batch / self.mean_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "size": list(self.size),
            "fps": self.fps,
            "throughput_fps": self.throughput_fps,
        }


def stats_from_times(times_s: list[float], *, size: tuple[int, int], batch: int) -> LatencyStats:
    s = summarize_times(times_s, batch=batch)
    return LatencyStats(
        size=size,
        batch=batch,
        runs=int(s["runs"]),
        p50_ms=s["p50_ms"],
        p90_ms=s["p90_ms"],
        p99_ms=s["p99_ms"],
        mean_ms=s["mean_ms"],
        std_ms=s["std_ms"],
        min_ms=s["min_ms"],
        max_ms=s["max_ms"],
    )


def time_runner(
    runner: BaseRunner,
    *,
    size: tuple[int, int] = (270, 480),
    batch: int = 1,
    warmup: int = 3,
    runs: int = 20,
    seed: int = 0,
    min_seconds: float = 0.0,
    sampler: PowerSampler | None = None,
) -> LatencyStats:
    """Time ``runner`` on LR frames of ``size`` (H, W); the runner is activated if needed.

    At least ``runs`` timed calls, continuing until ``min_seconds`` have passed (energy needs
    a window long enough for the sensor). A ``sampler`` is started after the warm-up and
    halted after the last timed call; read its ``result(frames)`` afterwards.
    """
    was_active = runner.is_active
    runner.activate()
    try:
        frame = np.random.default_rng(seed).random(
            (batch, runner.num_channels, *size), dtype=np.float32
        )
        for _ in range(warmup):
            runner.infer(frame)
        runner.inference_times.clear()
        timed_loop(
            runner.infer, frame, warmup=0, runs=runs, min_seconds=min_seconds, sampler=sampler
        )
        return stats_from_times(list(runner.inference_times), size=size, batch=batch)
    finally:
        if not was_active:
            runner.deactivate()


# -- interleaved timing of several models --------------------------------------------------------

# Measured on the 2-vCPU VM (ORT 2 threads, ESPCN x4 fp32/pruned/distilled at 270x480, 5 rounds
# of 5-8 calls, ~2.5 s per timing): 23 quiet timings, 15 beside other busy processes.
# - other processes' CPU: quiet 0.00-0.04 cores; beside a busy process 0.33-1.01, beside two
#   busy loops 1.01-1.05 (the share ORT's 2 threads leave them). Above 0.3: not trusted.
MAX_OTHER_CORES = 0.3
# - width of a model's per-round speed-ups, (max - min) / median: quiet 2-14 % (one at 14.4 %:
#   15 % leaves no margin); busy, the widest model of each timing 22-182 % (pruned ESPCN read
#   1.48x-2.37x for a quiet 2.29x). Wider than 20 %: not trusted.
MAX_SPEEDUP_SPREAD = 0.20


@dataclass(frozen=True)
class CpuTicks:
    """CPU time at one instant (clock ticks): all use of this process's CPUs, and its own.

    The difference of two readings, less this process's share, is what other processes (and a
    hypervisor's steal) took from the CPUs the timed models run on.
    """

    busy: int
    own: int
    cpus: int
    wall_s: float


def _busy_ticks(stat: str, cpus: set[int] | None) -> tuple[int, int]:
    """(busy ticks, CPU count) over the ``cpuN`` lines of /proc/stat listed in ``cpus``.

    Busy = user + nice + system + irq + softirq + steal; guest time is already inside user/nice,
    idle and iowait are not busy. ``cpus`` None: every CPU.
    """
    busy = count = 0
    for line in stat.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            [int(v) for v in fields[:8]] + [0] * 8
        )[:8]
        busy += user + nice + system + irq + softirq + steal
        count += 1
    return busy, count


def _own_ticks(self_stat: str) -> int:
    """utime + stime of a process (all its threads) from its /proc/PID/stat line."""
    # The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    fields = self_stat[self_stat.rindex(")") + 1 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def read_cpu_ticks(proc: Path = Path("/proc"), cpus: set[int] | None = None) -> CpuTicks | None:
    """The CPU time used so far on ``cpus`` (default: those this process may run on) and by
    this process; None where /proc cannot be read (not Linux)."""
    if cpus is None and hasattr(os, "sched_getaffinity"):
        cpus = set(os.sched_getaffinity(0))
    try:
        stat = (proc / "stat").read_text()
        own = _own_ticks((proc / "self" / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    busy, count = _busy_ticks(stat, cpus)
    if count == 0:
        return None
    return CpuTicks(busy=busy, own=own, cpus=count, wall_s=time.monotonic())


def other_cores(before: CpuTicks, after: CpuTicks, *, hz: int | None = None) -> float:
    """Cores' worth of CPU other processes used between two readings (USER_HZ ticks)."""
    hz = hz or os.sysconf("SC_CLK_TCK")
    wall = after.wall_s - before.wall_s
    if wall <= 0:
        return 0.0
    other = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, other / hz / wall)


@dataclass(frozen=True)
class InterleavedTiming:
    """Several models timed in interleaved rounds; index 0 is the baseline of the ratios.

    ``stats``: over all timed calls of each model. ``round_medians_ms[i][r]``: model i's median
    in round r. ``speedups[i]``: median over rounds of (baseline / model i) round medians, with
    ``speedup_ranges[i]`` its (lowest, highest). ``other_cores``: CPU other processes used while
    timing (None: not measurable here). ``warning``: why the ratios cannot be trusted, or "".
    """

    stats: tuple[LatencyStats, ...]
    round_medians_ms: tuple[tuple[float, ...], ...]
    speedups: tuple[float, ...]
    speedup_ranges: tuple[tuple[float, float], ...]
    other_cores: float | None
    cpus: int
    seconds: float
    warning: str = ""

    @property
    def trusted(self) -> bool:
        return not self.warning


def _time_fresh(
    make: Callable[[], BaseRunner], *, size: tuple[int, int], batch: int, warmup: int, runs: int
) -> list[float]:
    """One model's timed calls (seconds) in a new runner, released before the next model runs:
    a live ORT session's idle threads keep spinning and would slow the next one."""
    runner = make()
    if runner.is_active:
        raise ValueError(f"runner '{runner.name}' is already active; make a new one per round")
    time_runner(runner, size=size, batch=batch, warmup=warmup, runs=runs)
    return list(runner.inference_times)


def _speedups(round_medians: list[list[float]]) -> list[list[float]]:
    """Per model, per round: the baseline's round median over this model's."""
    return [[b / m for b, m in zip(round_medians[0], row, strict=True)] for row in round_medians]


def _untrusted_reason(
    load: float | None,
    cpus: int,
    ratios: list[list[float]],
    names: Sequence[str],
    *,
    max_other_cores: float,
    max_spread: float,
) -> str:
    """Why the ratios cannot be trusted, in words for the table's footnote ("" when they can)."""
    reasons = []
    if load is not None and load > max_other_cores:
        reasons.append(
            f"other processes used {load:.2f} cores of {cpus} while timing; rerun on a quiet machine"
        )
    wide = [
        f"{name} {min(r):.2f}x-{max(r):.2f}x"
        for name, r in zip(names, ratios, strict=True)
        if (max(r) - min(r)) / statistics.median(r) > max_spread
    ]
    if wide:
        reasons.append(
            f"speed-ups varied between rounds by more than {max_spread:.0%} of their median "
            f"({', '.join(wide)})"
        )
    return "; ".join(reasons)


def time_interleaved(
    make_runners: Sequence[Callable[[], BaseRunner]],
    *,
    size: tuple[int, int] = (270, 480),
    batch: int = 1,
    rounds: int = 5,
    runs_per_round: int = 8,
    warmup: int = 3,
    names: Sequence[str] | None = None,
    max_other_cores: float = MAX_OTHER_CORES,
    max_spread: float = MAX_SPEEDUP_SPREAD,
    proc: Path = Path("/proc"),
) -> InterleavedTiming:
    """Time every model in ``rounds`` rounds; in each, every model in turn gets a new runner
    (``make_runners[i]()``), ``warmup`` calls and ``runs_per_round`` timed calls.

    Models share the machine's slow and fast phases, so their per-round ratios compare like
    with like. The result says (``warning``) when other processes took more than
    ``max_other_cores`` meanwhile or a speed-up's range is wider than ``max_spread`` of it.
    """
    if not make_runners or rounds < 1 or runs_per_round < 1:
        raise ValueError("time_interleaved needs at least one model, round and timed run")
    names = list(names) if names is not None else [f"model {i}" for i in range(len(make_runners))]
    times: list[list[float]] = [[] for _ in make_runners]
    medians: list[list[float]] = [[] for _ in make_runners]
    before, t0 = read_cpu_ticks(proc), time.perf_counter()
    for _ in range(rounds):
        for i, make in enumerate(make_runners):
            t = _time_fresh(make, size=size, batch=batch, warmup=warmup, runs=runs_per_round)
            times[i] += t
            medians[i].append(1000.0 * statistics.median(t))
    after, seconds = read_cpu_ticks(proc), time.perf_counter() - t0
    load = other_cores(before, after) if before and after else None
    cpus = after.cpus if after else os.cpu_count() or 1
    ratios = _speedups(medians)
    return InterleavedTiming(
        stats=tuple(stats_from_times(t, size=size, batch=batch) for t in times),
        round_medians_ms=tuple(tuple(m) for m in medians),
        speedups=tuple(statistics.median(r) for r in ratios),
        speedup_ranges=tuple((min(r), max(r)) for r in ratios),
        other_cores=load,
        cpus=cpus,
        seconds=seconds,
        warning=_untrusted_reason(
            load, cpus, ratios, names, max_other_cores=max_other_cores, max_spread=max_spread
        ),
    )
