"""Latency of any runner, measured the same way for every backend.

Warm-up runs first (lazy initialisation, caches, CPU frequency ramp), then timed runs; the
statistics are over the per-call wall times that ``BaseRunner.infer`` records. Quote the
median: shared machines are noisy, and the mean is pulled by outliers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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

    @property
    def fps(self) -> float:
        return 1000.0 * self.batch / self.p50_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size), "fps": self.fps}


def stats_from_times(times_s: list[float], *, size: tuple[int, int], batch: int) -> LatencyStats:
    ms = np.asarray(times_s, dtype=np.float64) * 1000.0
    return LatencyStats(
        size=size,
        batch=batch,
        runs=len(ms),
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        std_ms=float(statistics.pstdev(ms)) if len(ms) > 1 else 0.0,
        min_ms=float(ms.min()),
    )


def time_runner(
    runner: BaseRunner,
    *,
    size: tuple[int, int] = (270, 480),
    batch: int = 1,
    warmup: int = 3,
    runs: int = 20,
    seed: int = 0,
) -> LatencyStats:
    """Time ``runner`` on LR frames of ``size`` (H, W); the runner is activated if needed."""
    was_active = runner.is_active
    runner.activate()
    try:
        frame = np.random.default_rng(seed).random(
            (batch, runner.num_channels, *size), dtype=np.float32
        )
        for _ in range(warmup):
            runner.infer(frame)
        runner.inference_times.clear()
        for _ in range(runs):
            runner.infer(frame)
        return stats_from_times(list(runner.inference_times), size=size, batch=batch)
    finally:
        if not was_active:
            runner.deactivate()
