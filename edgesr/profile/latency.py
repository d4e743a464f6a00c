"""Latency of any runner, measured the same way for every backend.

Warm-up runs first (lazy initialisation, caches, CPU frequency ramp), then timed runs; the
statistics are over the per-call wall times that ``BaseRunner.infer`` records. Quote the
median: shared machines are noisy, and the mean is pulled by outliers. The loop and the
statistics are the device profiler's (:mod:`edgesr.profile.minimal`), so a number taken on a
Jetson with the minimal profiler means the same as one taken here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
