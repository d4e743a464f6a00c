"""What a tune study found: per-trial records, the Pareto front, the pick, the early-stop rule.

Objectives: maximise ``psnr_y``, minimise ``latency_ms`` (and ``size_bytes`` when asked).
A trial is feasible when it breaks no budget line; only feasible complete trials make the front.

The pick (``best.yaml``): with a budget, the highest PSNR on the front (all of it is within the
budget); without one, the knee: the front point nearest the ideal corner (best PSNR, lowest
latency) once both axes are scaled to the front's range, i.e. the most balanced trade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The early-stop rule, see hopeless().
PRUNE_MARGIN_DB = 0.5


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, Any]
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    psnr_y: float | None = None
    # The ratio below times the recipe net's median from the study's first timing.
    latency_ms: float | None = None
    size_bytes: int | None = None
    # Latency over the recipe's own net's, timed in the same interleaved rounds (less noisy
    # than comparing two medians taken minutes apart on a shared machine).
    latency_ratio: float | None = None
    # This trial's own median, as timed (latency_ms is the ratio times the study's reference).
    measured_ms: float | None = None
    # Multiply-accumulates per frame at the latency frame size: a noise-free view of cost.
    gmacs: float | None = None
    # The FP32 net's latency, timed before training (with --int8, latency_ms is the INT8 one's).
    fp32_latency_ms: float | None = None
    feasible: bool | None = None
    violations: list[str] = field(default_factory=list)
    # Validation PSNR at fractions of the training schedule ("0.33": dB, ...).
    val_curve: dict[str, float] = field(default_factory=dict)
    pruned_reason: str = ""
    duration_s: float | None = None
    worker: str = ""
    baseline: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_from_trial(trial: Any) -> TrialRecord:
    """A record of an Optuna FrozenTrial (objective values and what the trial stored)."""
    attrs = trial.user_attrs
    values = trial.values if trial.state.name == "COMPLETE" else None
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRecord(
        number=trial.number,
        params=dict(trial.params),
        state=trial.state.name,
        psnr_y=values[0] if values else attrs.get("psnr_y"),
        latency_ms=values[1] if values else attrs.get("latency_ms"),
        size_bytes=attrs.get("size_bytes"),
        latency_ratio=attrs.get("latency_ratio"),
        measured_ms=attrs.get("measured_ms"),
        fp32_latency_ms=attrs.get("fp32_latency_ms"),
        gmacs=attrs.get("gmacs"),
        feasible=attrs.get("feasible"),
        violations=list(attrs.get("violations", [])),
        val_curve=dict(attrs.get("val_curve", {})),
        pruned_reason=attrs.get("pruned_reason", ""),
        duration_s=duration,
        worker=attrs.get("worker", ""),
        baseline=bool(attrs.get("baseline", False)),
    )


def _objectives(r: TrialRecord, with_size: bool) -> tuple[float, ...]:
    """All to be minimised."""
    assert r.psnr_y is not None and r.latency_ms is not None
    out: tuple[float, ...] = (-r.psnr_y, r.latency_ms)
    if with_size:
        out += (float(r.size_bytes or 0),)
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (all minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(records: Sequence[TrialRecord], *, with_size: bool = False) -> list[TrialRecord]:
    """The feasible complete trials no other feasible complete trial dominates, by latency."""
    done = [r for r in records if r.state == "COMPLETE" and r.feasible is not False]
    objs = [_objectives(r, with_size) for r in done]
    front = [
        r
        for r, o in zip(done, objs, strict=True)
        if not any(dominates(other, o) for other in objs if other is not o)
    ]
    return sorted(front, key=lambda r: (r.latency_ms, -(r.psnr_y or 0.0)))


def pick_best(front: Sequence[TrialRecord], *, budgeted: bool) -> TrialRecord | None:
    """Highest PSNR within the budget, or the knee of the front without one (module doc)."""
    if not front:
        return None
    if budgeted or len(front) == 1:
        return max(front, key=lambda r: (r.psnr_y, -(r.latency_ms or 0.0)))
    psnrs = [r.psnr_y or 0.0 for r in front]
    lats = [r.latency_ms or 0.0 for r in front]
    p_span = (max(psnrs) - min(psnrs)) or 1.0
    l_span = (max(lats) - min(lats)) or 1.0

    def distance(r: TrialRecord) -> float:
        dp = (max(psnrs) - (r.psnr_y or 0.0)) / p_span
        dl = ((r.latency_ms or 0.0) - min(lats)) / l_span
        return math.hypot(dp, dl)

    return min(front, key=lambda r: (distance(r), -(r.psnr_y or 0.0)))


def violations(
    *, latency_ms: float, size_bytes: int, psnr_y: float | None, limits: Mapping[str, float]
) -> list[str]:
    """The budget lines a trial breaks, in words (empty: feasible).

    ``limits``: ``latency_ms`` and ``size_bytes`` maxima, ``psnr_y`` minimum (any subset).
    """
    out = []
    if "latency_ms" in limits and latency_ms > limits["latency_ms"]:
        out.append(f"latency {latency_ms:.2f} ms > {limits['latency_ms']:.2f} ms")
    if "size_bytes" in limits and size_bytes > limits["size_bytes"]:
        out.append(f"size {size_bytes} B > {limits['size_bytes']:.0f} B")
    if "psnr_y" in limits and psnr_y is not None and psnr_y < limits["psnr_y"]:
        out.append(f"PSNR-Y {psnr_y:.2f} dB < {limits['psnr_y']:.2f} dB")
    return out


def hopeless(
    fraction: float,
    psnr_y: float,
    latency_ms: float,
    finished: Sequence[TrialRecord],
    *,
    margin_db: float = PRUNE_MARGIN_DB,
) -> str:
    """Why a running trial should stop now ("" to go on).

    The rule: at an intermediate validation, ``fraction`` of the way through its schedule, a
    trial stops when a finished feasible trial that is at least as fast (latency measured before
    training, which the weights do not change) had a validation PSNR more than ``margin_db``
    higher at the same fraction of its own schedule. That trial would have to gain more than
    the margin on a faster net in the rest of its training to escape domination. Optuna's
    pruners work on single-objective studies only, hence a rule of edgesr's own.
    """
    key = f"{fraction:.2f}"
    for other in finished:
        if other.state != "COMPLETE" or other.feasible is False or other.latency_ms is None:
            continue
        theirs = other.val_curve.get(key)
        # Like with like: the running trial knows only its FP32 latency so far.
        other_ms = other.fp32_latency_ms if other.fp32_latency_ms is not None else other.latency_ms
        if theirs is None or other_ms > latency_ms:
            continue
        if theirs - psnr_y > margin_db:
            return (
                f"at {fraction:.0%} of training {psnr_y:.2f} dB, {theirs - psnr_y:.2f} dB below "
                f"trial {other.number} ({theirs:.2f} dB) at {other_ms:.2f} <= "
                f"{latency_ms:.2f} ms"
            )
    return ""


def front_table(front: Sequence[TrialRecord], best: TrialRecord | None) -> str:
    """A plain-text table of the front, fastest first."""
    rows = [("trial", "PSNR-Y dB", "latency ms", "vs recipe", "GMACs", "size KB", "params")]
    for r in front:
        mark = "*" if best is not None and r.number == best.number else ""
        ratio = f"{r.latency_ratio:.2f}x" if r.latency_ratio else "-"
        params = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in r.params.items())
        rows.append(
            (
                f"{r.number}{mark}{' (recipe)' if r.baseline else ''}",
                f"{r.psnr_y:.2f}",
                f"{r.latency_ms:.2f}",
                ratio,
                f"{r.gmacs:.2f}" if r.gmacs is not None else "-",
                f"{(r.size_bytes or 0) / 1024:.1f}",
                params,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    return "\n".join(lines)


def _xy(records: Sequence[TrialRecord]) -> tuple[list[float], list[float]]:
    """Latencies and PSNRs of complete records, for the plot."""
    return [float(r.latency_ms or 0.0) for r in records], [float(r.psnr_y or 0.0) for r in records]


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def plot_front(
    records: Sequence[TrialRecord],
    front: Sequence[TrialRecord],
    best: TrialRecord | None,
    path: Any,
    *,
    title: str,
    latency_limit_ms: float | None = None,
) -> None:
    """``pareto.png``: PSNR vs latency, every complete trial, the front joined, the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    done = [r for r in records if r.state == "COMPLETE" and r.psnr_y is not None]
    ok = [r for r in done if r.feasible is not False]
    bad = [r for r in done if r.feasible is False]
    ax.scatter(*_xy(ok), c="0.6", s=18, label="trials")
    if bad:
        ax.scatter(
            *_xy(bad),
            c="tab:red",
            marker="x",
            s=22,
            label="over budget",
        )
    if front:
        ax.step(
            *_xy(front),
            where="post",
            c="tab:blue",
            lw=1.2,
        )
        ax.scatter(
            *_xy(front),
            c="tab:blue",
            s=30,
            zorder=3,
            label="Pareto front",
        )
        for r in front:
            ax.annotate(
                str(r.number),
                (float(r.latency_ms or 0.0), float(r.psnr_y or 0.0)),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    base = [r for r in done if r.baseline]
    if base:
        ax.scatter(
            *_xy(base[:1]),
            facecolors="none",
            edgecolors="k",
            s=80,
            zorder=4,
            label="recipe's own params",
        )
    if best is not None:
        ax.scatter(
            *_xy([best]),
            marker="*",
            c="gold",
            edgecolors="k",
            s=160,
            zorder=5,
            label=f"best.yaml (trial {best.number})",
        )
    if latency_limit_ms is not None:
        ax.axvline(latency_limit_ms, c="tab:red", ls="--", lw=1, label="latency budget")
    ax.set_xlabel("latency (ms: ratio to the recipe's net x its median)")
    ax.set_ylabel("PSNR-Y (dB, validation images)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
