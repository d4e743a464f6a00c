"""Interleaved latency of several models: order, fresh sessions, ratios, and when not to trust them.

Real ONNX Runtime on small conv nets built with ``onnx.helper`` (one 3x cheaper than the other),
/proc accounting on real-format files, and a real concurrent CPU load (busy-looping processes).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from edgesr.compress.stages import Latency
from edgesr.pipeline.compress import ort_latency
from edgesr.profile.latency import (
    MAX_OTHER_CORES,
    InterleavedTiming,
    _untrusted_reason,
    other_cores,
    read_cpu_ticks,
    time_interleaved,
)
from edgesr.runtime.runners import BaseRunner, OnnxRuntimeRunner

SIZE = (48, 64)
LINUX = Path("/proc/stat").is_file() and Path("/proc/self/stat").is_file()


def conv_net(path: Path, *, body: int, channels: int = 24, scale: int = 2) -> Path:
    """A Y-channel SR net: 1->C conv, ``body`` C->C convs with ReLU, C->s^2 conv, DepthToSpace."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(body)
    widths = [1] + [channels] * (body + 1) + [scale * scale]
    nodes, inits, x = [], [], "lr"
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        y = f"c{i}"
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [y], pads=[1, 1, 1, 1]))
        if i < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
            y = f"r{i}"
        x = y
    nodes.append(helper.make_node("DepthToSpace", [x], ["sr"], blocksize=scale, mode="CRD"))
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 1, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"edgesr.scale": str(scale), "edgesr.color": "y_bt601"})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(heavy, light): the light net has a third of the heavy one's body convs."""
    folder = tmp_path_factory.mktemp("nets")
    return conv_net(folder / "heavy.onnx", body=9), conv_net(folder / "light.onnx", body=3)


class CountingRunner(OnnxRuntimeRunner):
    """A real ORT runner that logs every session it creates and releases."""

    log: list[tuple[str, str]] = []

    def activate_impl(self) -> None:
        super().activate_impl()
        self.log.append(("activate", self.path.stem))

    def deactivate_impl(self) -> None:
        self.log.append(("deactivate", self.path.stem))
        super().deactivate_impl()


@pytest.fixture
def busy_loops() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two busy-looping processes for the duration of a test, killed afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)  # let them start spinning before anything is timed
        assert all(p.poll() is None for p in procs)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def stat_file(cpus: list[tuple[int, ...]]) -> str:
    """A /proc/stat in the kernel's format: the total line, one line per CPU, other counters."""
    total = [sum(col) for col in zip(*cpus, strict=True)]
    lines = ["cpu  " + " ".join(map(str, total))]
    lines += [f"cpu{i} " + " ".join(map(str, c)) for i, c in enumerate(cpus)]
    lines += ["intr 5033676 0 0 0", "ctxt 4400680", "btime 1700000000", "processes 18000"]
    return "\n".join(lines) + "\n"


def self_stat(utime: int, stime: int) -> str:
    """A /proc/self/stat line whose command name has spaces and parentheses."""
    head = "4242 (py (worker) x) R 1 4242 4242 0 -1 4194304 1200 0 0 0"
    tail = "0 0 20 0 3 0 123456 1000000 5000 18446744073709551615"
    return f"{head} {utime} {stime} {tail}\n"


def write_proc(root: Path, cpus: list[tuple[int, ...]], utime: int, stime: int) -> Path:
    (root / "self").mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(stat_file(cpus))
    (root / "self" / "stat").write_text(self_stat(utime, stime))
    return root


def test_other_processes_cpu_from_a_proc_tree(tmp_path: Path) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    cpu0 = (1000, 10, 200, 5000, 30, 0, 5, 7, 0, 0)
    cpu1 = (2000, 0, 300, 4000, 20, 0, 3, 9, 0, 0)
    cpu2 = (9000, 0, 900, 1000, 0, 0, 0, 0, 0, 0)  # not ours: outside the affinity set
    proc = write_proc(tmp_path, [cpu0, cpu1, cpu2], utime=400, stime=50)
    before = read_cpu_ticks(proc, cpus={0, 1})
    assert before is not None
    assert before.busy == (1000 + 10 + 200 + 5 + 7) + (2000 + 300 + 3 + 9)
    assert (before.own, before.cpus) == (450, 2)

    # Over 2 s at 100 ticks/s: CPUs 0-1 busy 300 ticks more (120 user, 20 system, 10 steal on
    # cpu0; 150 user on cpu1), this process 160 of them: others 140 ticks = 0.7 cores.
    cpu0b = (1120, 10, 220, 5060, 30, 0, 5, 17, 5, 0)  # guest is inside user: not counted twice
    cpu1b = (2150, 0, 300, 4050, 25, 0, 3, 9, 0, 0)
    cpu2b = (9900, 0, 900, 1000, 0, 0, 0, 0, 0, 0)
    write_proc(tmp_path, [cpu0b, cpu1b, cpu2b], utime=550, stime=60)
    after = read_cpu_ticks(proc, cpus={0, 1})
    assert after is not None and after.busy - before.busy == 300
    after = dataclasses.replace(after, wall_s=before.wall_s + 2.0)
    assert other_cores(before, after, hz=100) == pytest.approx(0.7)
    assert read_cpu_ticks(tmp_path / "missing") is None


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc")
def test_real_proc_sees_our_cpu_and_a_busy_child() -> None:
    before = read_cpu_ticks()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        pass
    mid = read_cpu_ticks()
    assert before is not None and mid is not None
    assert mid.own - before.own >= 20  # ~50 ticks of our own CPU at USER_HZ 100
    assert mid.busy - before.busy >= 0.6 * (mid.own - before.own)
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        after = read_cpu_ticks()
    finally:
        child.kill()
        child.wait(timeout=10)
    assert after is not None and other_cores(mid, after) > 0.5


def test_interleaved_order_fresh_sessions_and_speedup(nets: tuple[Path, Path]) -> None:
    heavy, light = nets
    CountingRunner.log.clear()
    made: list[str] = []

    def factory(path: Path) -> Callable[[], BaseRunner]:
        def make() -> BaseRunner:
            made.append(path.stem)
            return CountingRunner(path, threads=1)

        return make

    rounds, runs = 4, 6
    timing = time_interleaved(
        [factory(heavy), factory(light), factory(heavy)],
        size=SIZE,
        rounds=rounds,
        runs_per_round=runs,
        warmup=2,
        names=["heavy", "light", "heavy again"],
    )
    # Interleaved: every round runs every model in order, each in a session of its own that is
    # released before the next one is created.
    assert made == ["heavy", "light", "heavy"] * rounds
    assert CountingRunner.log == [
        (event, name) for name in made for event in ("activate", "deactivate")
    ]
    assert [s.runs for s in timing.stats] == [rounds * runs] * 3
    assert all(s.size == SIZE for s in timing.stats)
    assert [len(m) for m in timing.round_medians_ms] == [rounds] * 3
    assert timing.speedups[0] == 1.0 and timing.speedup_ranges[0] == (1.0, 1.0)
    # Results in the order given: the light net (a third of the convs) is the fast one.
    assert timing.stats[1].p50_ms < timing.stats[0].p50_ms
    assert timing.stats[1].p50_ms < timing.stats[2].p50_ms
    lo, hi = timing.speedup_ranges[1]
    assert lo <= timing.speedups[1] <= hi
    if timing.trusted:  # a quiet machine: the ratios hold
        assert timing.speedups[1] > 1.8, timing
        assert 0.8 < timing.speedups[2] < 1.25, timing
    else:  # a busy one (other tests, other jobs): it says why
        assert timing.warning, timing
    if LINUX:
        assert timing.other_cores is not None and timing.other_cores >= 0.0
        assert timing.cpus >= 1


def test_no_proc_leaves_the_spread_to_decide(nets: tuple[Path, Path], tmp_path: Path) -> None:
    heavy, light = nets
    timing = time_interleaved(
        [partial(OnnxRuntimeRunner, p, threads=1) for p in (heavy, light)],
        size=(16, 16),
        rounds=2,
        runs_per_round=2,
        warmup=1,
        proc=tmp_path / "no-proc",
    )
    assert timing.other_cores is None
    assert "other processes" not in timing.warning
    with OnnxRuntimeRunner(heavy) as runner, pytest.raises(ValueError, match="already active"):
        time_interleaved([lambda: runner], size=(8, 8), rounds=1, runs_per_round=1)


def test_untrusted_reasons_in_words() -> None:
    ratios = [[1.0, 1.0, 1.0], [2.0, 2.1, 2.05], [0.8, 1.6, 1.2]]
    names = ["fp32", "pruned", "int8-ort"]
    quiet = _untrusted_reason(0.05, 2, ratios[:2], names[:2], max_other_cores=0.3, max_spread=0.15)
    assert quiet == ""
    text = _untrusted_reason(0.9, 2, ratios, names, max_other_cores=0.3, max_spread=0.15)
    assert "other processes used 0.90 cores of 2 while timing; rerun on a quiet machine" in text
    assert "int8-ort 0.80x-1.60x" in text and "pruned" not in text
    assert (
        _untrusted_reason(None, 2, ratios[:2], names[:2], max_other_cores=0.3, max_spread=0.15)
        == ""
    )


def test_concurrent_cpu_load_makes_the_ratios_untrusted(
    nets: tuple[Path, Path], busy_loops: list[subprocess.Popen[bytes]]
) -> None:
    heavy, light = nets
    timing = time_interleaved(
        [partial(OnnxRuntimeRunner, p, threads=1) for p in (heavy, light)],
        size=SIZE,
        rounds=3,
        runs_per_round=5,
        warmup=2,
        names=["heavy", "light"],
    )
    assert isinstance(timing, InterleavedTiming) and not timing.trusted
    if LINUX:
        # Two busy loops share 2+ cores with one ORT thread: they get at least about a core.
        assert timing.other_cores is not None and timing.other_cores > 2 * MAX_OTHER_CORES
        assert "other processes used" in timing.warning and "quiet machine" in timing.warning


def test_ort_latency_rows_carry_ratio_range_and_warning(
    nets: tuple[Path, Path], busy_loops: list[subprocess.Popen[bytes]]
) -> None:
    """What compress gets: one Latency per model, in order; under load the same warning on
    every row, which makes the stage table print no ratio."""
    heavy, light = nets
    rows = ort_latency(size=SIZE, threads=2, runs=10)([heavy, light])
    assert len(rows) == 2 and all(isinstance(r, Latency) for r in rows)
    assert rows[0].speedup == 1.0 and rows[0].speedup_range == (1.0, 1.0)
    assert rows[1].speedup is not None and rows[1].speedup_range is not None
    assert rows[1].p50_ms < rows[0].p50_ms
    if LINUX:
        assert rows[0].warning and all(r.warning == rows[0].warning for r in rows)
        assert "other processes used" in rows[0].warning
