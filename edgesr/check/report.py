"""``edgesr report RUN_DIR``: one self-contained HTML page about a compress run.

The page has the stage table (FP32 -> pruned -> distilled -> INT8: PSNR, SSIM, latency, size,
MACs), a PSNR-vs-latency plot with bicubic as the reference line, the budget verdicts of a
check, and side-by-side crops (bicubic / each stage / ground truth) of the evaluation images,
each cut where the image has the most detail. CSS is inline and images are base64 PNGs, so the
file can be mailed or attached to a release as it is.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ConfigError, DataError, EdgesrError, require

__all__ = ["build_report", "make_crops", "plot_psnr_latency", "screenshot", "write_report"]

STATUS_COLORS = {"pass": "#15803d", "fail": "#b91c1c", "missing": "#b45309", "waived": "#6b7280"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;
  margin:24px auto;max-width:1240px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;
  padding-bottom:4px}
.meta{color:#4b5563;font-size:13px}.meta b{color:#111827;font-weight:600}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:6px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600}td:first-child,th:first-child{text-align:left}
td.note{text-align:left;white-space:normal;color:#6b7280;font-size:12px;max-width:360px}
tr.ref td{color:#6b7280;font-style:italic}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px;font-weight:600}
.cell{line-height:1.2}.cell small{display:block;color:#6b7280;font-size:11px}
.crops{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 18px}
figure{margin:0;text-align:center;font-size:12px;color:#374151}
figure img{image-rendering:pixelated;border:1px solid #d1d5db;display:block}
.muted{color:#6b7280}
"""


def _b64_png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def encode_png(rgb: np.ndarray) -> bytes:
    """uint8 RGB -> PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise EdgesrError("PNG encoding failed")
    return buf.tobytes()


# --------------------------------------------------------------------------------------------
# Plot


def plot_psnr_latency(manifest: dict[str, Any]) -> bytes:
    """PSNR-Y against ORT p50 latency per stage, bicubic as a dashed reference; PNG bytes."""
    require(
        "matplotlib",
        purpose="the report's PSNR-vs-latency plot",
        install="pip install 'edgesr[report]' (or pip install matplotlib)",
    )
    from matplotlib.figure import Figure  # Figure + savefig: no pyplot state, no GUI backend

    # A compress run made without a latency function has no latency to plot against.
    stages = [s for s in manifest["stages"] if s.get("latency_p50_ms") is not None]
    lat = manifest.get("latency") or {}
    fig = Figure(figsize=(7.6, 4.0), dpi=110)
    ax = fig.subplots()
    xs = [float(s["latency_p50_ms"]) for s in stages]
    # On the embedded set the photos are what camera frames see (and what the front is ranked
    # by); its near-noiseless synthetic images would dominate the mean.
    on_photos = bool(stages) and all(_photos(s) is not None for s in stages)
    ys = [_photos(s) or 0.0 if on_photos else float(s["psnr_y"]) for s in stages]
    # The line joins the run's speed/quality front (manifest "front"), fastest first; stages off
    # it are points only. Older runs without a front: every stage, by latency.
    on_front = set(manifest.get("front") or [s["stage"] for s in stages])
    line = sorted((x, y) for s, x, y in zip(stages, xs, ys, strict=True) if s["stage"] in on_front)
    if line:
        ax.plot(*zip(*line, strict=True), "-", color="#93c5fd", zorder=1, label="front")
    ax.scatter(xs, ys, s=[30 + s["file_bytes"] / 2048 for s in stages], color="#2563eb", zorder=2)
    for s, x, y in zip(stages, xs, ys, strict=True):
        ax.annotate(
            f"{s['stage']}\n{s['file_bytes'] / 1024:.0f} KiB",
            (x, y),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    # Bicubic is scored over all evaluation images only.
    bic = None if on_photos else (manifest.get("bicubic") or {}).get("psnr_y")
    if bic is not None:
        ax.axhline(bic, ls="--", color="#6b7280", lw=1, label=f"bicubic {bic:.2f} dB")
        ax.legend(loc="lower right", fontsize=8)
    size = lat.get("size") or ["?", "?"]
    ax.set_xlabel(
        f"latency p50 (ms): {lat.get('backend', '?')}, LR {size[0]}x{size[1]}, "
        f"threads {lat.get('threads', '?')}"
    )
    where = manifest.get("eval_data", "?")
    ax.set_ylabel(f"PSNR-Y (dB), photos of {where}" if on_photos else f"PSNR-Y (dB) on {where}")
    ax.set_xlim(left=0, right=(max(xs) * 1.3) or 1.0)
    low = min(ys + ([bic] if bic is not None else []))
    high = max(ys + ([bic] if bic is not None else []))
    pad = max(0.25, 0.15 * (high - low))
    ax.set_ylim(low - pad, high + pad)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Crops


def detail_window(y: np.ndarray, size: int, stride: int = 4) -> tuple[int, int, float]:
    """Top-left corner of the ``size`` square with the most gradient energy, and its score."""
    g = np.zeros_like(y)
    g[:, 1:] += np.abs(np.diff(y, axis=1))
    g[1:, :] += np.abs(np.diff(y, axis=0))
    integral = np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best = (0, 0, -1.0)
    for top in range(0, y.shape[0] - size + 1, stride):
        bottom = top + size
        rows = integral[bottom] - integral[top]
        sums = rows[size:] - rows[:-size]  # every left column at once
        left = int(np.argmax(sums[::stride])) * stride
        score = float(sums[left])
        if score > best[2]:
            best = (top, left, score)
    return best[0], best[1], best[2] / (size * size)


def make_crops(
    manifest: dict[str, Any], run_dir: Path, *, count: int = 3, size: int = 128
) -> tuple[list[dict[str, Any]], str]:
    """Crops of the ``count`` most detailed evaluation images: bicubic, each stage, HR.

    Each stage's ONNX runs through ONNX Runtime, as the stage table was measured. Returns the
    crops and, when there are none, why.
    """
    from edgesr.evaluate import bicubic_upscale, resolve_eval_data, super_resolve, y_of
    from edgesr.metrics import calculate_psnr
    from edgesr.runtime.runners import OnnxRuntimeRunner

    stages = manifest["stages"]
    runners: list[tuple[str, OnnxRuntimeRunner | None, str]] = []
    scale = None
    for row in stages:
        path = run_dir / str(row["onnx"])
        runner = OnnxRuntimeRunner(path, threads=(manifest.get("latency") or {}).get("threads"))
        try:
            runner.activate()
            scale = scale or runner.scale
            runners.append((str(row["stage"]), runner, ""))
        except EdgesrError as exc:
            runners.append((str(row["stage"]), None, str(exc)))
    try:
        if scale is None:
            return [], "no stage's ONNX model could be loaded: " + "; ".join(r[2] for r in runners)
        data = manifest.get("eval_data") or "embedded"
        try:
            pairs = resolve_eval_data(data, scale=scale)
        except EdgesrError as exc:
            return [], f"the evaluation images ({data}) are not available here: {exc}"
        scored = []
        for pair in pairs:
            hr_y = y_of(pair.hr_rgb)
            side = min(size, *hr_y.shape) // scale * scale
            if side < 8:
                continue
            top, left, score = detail_window(hr_y, side)
            scored.append((score, pair, top, left, side, hr_y))
        scored.sort(key=lambda t: -t[0])
        crops = []

        def psnr(img: np.ndarray, ref: np.ndarray) -> float:
            return calculate_psnr(img, ref, crop_border=0, test_y_channel=False, data_range=1.0)

        for _, pair, top, left, side, hr_y in scored[:count]:
            box = (slice(top, top + side), slice(left, left + side))
            tiles: list[tuple[str, np.ndarray | None, float | None, str]] = []
            bic_rgb = bicubic_upscale(pair, scale)
            tiles.append(("bicubic", bic_rgb[box], psnr(y_of(bic_rgb)[box], hr_y[box]), ""))
            for stage, stage_runner, why in runners:
                if stage_runner is None:
                    tiles.append((stage, None, None, why))
                    continue
                sr_y, sr_rgb = super_resolve(stage_runner, pair.lr_rgb)
                tiles.append((stage, sr_rgb[box], psnr(sr_y[box], hr_y[box]), ""))
            tiles.append(("ground truth", pair.hr_rgb[box], None, ""))
            crops.append(
                {"name": pair.name, "box": (top, left, side), "scale": scale, "tiles": tiles}
            )
        return crops, "" if crops else "no evaluation image is large enough for a crop"
    finally:
        for _, stage_runner, _ in runners:
            if stage_runner is not None:
                stage_runner.deactivate()


# --------------------------------------------------------------------------------------------
# HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str, unit: str = "") -> str:
    """A number, or a dash where the run did not measure it."""
    return "—" if value is None else f"{float(value):{fmt}}{unit}"


def _photos(stage: dict[str, Any]) -> float | None:
    """A stage's Y-PSNR on the photos of the embedded evaluation set (None for other sets)."""
    value = (stage.get("psnr_y_by_kind") or {}).get("photos")
    return None if value is None else float(value)


def _stage_table(manifest: dict[str, Any]) -> str:
    stages = manifest["stages"]
    photos = bool(stages) and all(_photos(s) is not None for s in stages)
    base = _photos(stages[0]) if photos else None
    head = (
        "<tr><th>stage</th><th>target</th><th>params</th><th>GMACs</th><th>size</th>"
        "<th>PSNR-Y</th><th>ΔPSNR</th>"
        + ("<th>Δ photos</th>" if photos else "")
        + "<th>SSIM-Y</th><th>p50 ms</th><th>p90 ms</th><th>speed-up</th><th>notes</th></tr>"
    )
    rows = []
    for s in stages:
        value = _photos(s)
        on_photos = "" if base is None or value is None else f"<td>{value - base:+.2f}</td>"
        rows.append(
            "<tr>"
            f"<td><b>{_e(s['stage'])}</b></td><td>{_e(s.get('target', ''))}</td>"
            f"<td>{int(s.get('params', 0)):,}</td><td>{float(s.get('gmacs', 0)):.2f}</td>"
            f"<td>{s['file_bytes'] / 1024:.1f} KiB</td><td>{s['psnr_y']:.2f} dB</td>"
            f"<td>{float(s.get('delta_psnr_vs_fp32', 0)):+.2f}</td>{on_photos}"
            f"<td>{s['ssim_y']:.4f}</td>"
            f"<td>{_num(s.get('latency_p50_ms'), '.2f')}</td><td>{_num(s.get('latency_p90_ms'), '.2f')}</td>"
            f"<td>{_num(s.get('speedup_vs_fp32'), '.2f', '×')}</td>"
            f"<td class='note'>{_e(s.get('notes', ''))}</td></tr>"
        )
    bic = manifest.get("bicubic") or {}
    if bic:
        rows.append(
            "<tr class='ref'><td>bicubic</td><td>—</td><td>—</td><td>—</td><td>—</td>"
            f"<td>{bic['psnr_y']:.2f} dB</td><td></td>{'<td></td>' if photos else ''}"
            f"<td>{bic['ssim_y']:.4f}</td>"
            "<td>—</td><td>—</td><td></td><td class='note'>reference</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#6b7280")
    return f"<span class='badge' style='background:{color}'>{_e(status.upper())}</span>"


def _verdicts(check: dict[str, Any] | None, origin: str) -> str:
    if check is None:
        return (
            "<p class='muted'>No budget check. Run <code>edgesr check --budget NAME …</code>, or "
            "pass <code>--budget NAME</code> to <code>edgesr report</code>.</p>"
        )
    budget = check.get("budget") or {}
    checks = check["checks"]
    intro = (
        f"<p class='meta'>Budget <b>{_e(budget.get('name', '?'))}</b>"
        + (f" — {_e(budget['description'])}" if budget.get("description") else "")
        + (f"<br>Device: {_e(budget['device'])}" if budget.get("device") else "")
        + f"<br>Source: {_e(origin)}</p>"
    )
    keys: list[tuple[str, str]] = []
    for c in checks:
        for line in c["lines"]:
            bound = {"max": "≤", "min": "≥"}.get(line["bound"], "=")
            entry = (line["key"], f"{line['label']} {bound} {line['limit_text']}")
            if entry not in keys:
                keys.append(entry)
    head = "<tr><th>limit</th>" + "".join(f"<th>{_e(c['subject'])}</th>" for c in checks) + "</tr>"
    rows = []
    notes: dict[str, str] = {}
    for key, label in keys:
        cells = []
        for c in checks:
            line = next((x for x in c["lines"] if x["key"] == key), None)
            if line is None:
                cells.append("<td>—</td>")
                continue
            status = line["status"]
            if line.get("note"):
                notes.setdefault(line["note"], label)
            detail = line["measured_text"] if line["measured"] is not None else "not measured"
            margin = line["margin_text"] if line["margin"] is not None else ""
            cells.append(
                f"<td title='{_e(line.get('note', ''))}'><div class='cell'>{_badge(status)} "
                f"{_e(detail)}<small>{_e(margin)}</small></div></td>"
            )
        rows.append(f"<tr><td>{_e(label)}</td>{''.join(cells)}</tr>")
    rows.append(
        "<tr><td><b>verdict</b></td>"
        + "".join(f"<td>{_badge(c['verdict'])}</td>" for c in checks)
        + "</tr>"
    )
    note_html = ""
    if notes:
        items = "".join(f"<li>{_e(label)}: {_e(note)}</li>" for note, label in notes.items())
        note_html = (
            f"<p class='meta'>Why lines are not measured or fail:</p><ul class='meta'>{items}</ul>"
        )
    return intro + f"<table>{head}{''.join(rows)}</table>" + note_html


def _crops_html(crops: list[dict[str, Any]], why: str) -> str:
    if not crops:
        return f"<p class='muted'>No crops: {_e(why)}</p>"
    parts = []
    for crop in crops:
        top, left, side = crop["box"]
        width = min(200, max(side, int(side * 1.5)))
        parts.append(
            f"<p class='meta'><b>{_e(crop['name'])}</b> — {side}×{side} px HR crop at "
            f"({left}, {top}), the most detailed window; x{crop['scale']}</p><div class='crops'>"
        )
        for label, rgb, psnr, why_not in crop["tiles"]:
            if rgb is None:
                parts.append(
                    f"<figure><div style='width:{width}px;height:{width}px' class='muted'>"
                    f"not runnable</div><figcaption title='{_e(why_not)}'>{_e(label)}</figcaption></figure>"
                )
                continue
            caption = _e(label) + (f"<br>{psnr:.2f} dB" if psnr is not None else "<br>&nbsp;")
            parts.append(
                f"<figure><img alt='{_e(label)}' width='{width}' height='{width}' "
                f"src='{_b64_png(encode_png(rgb))}'><figcaption>{caption}</figcaption></figure>"
            )
        parts.append("</div>")
    return "".join(parts)


def build_report(
    run_dir: str | Path,
    *,
    check: str | Path | dict[str, Any] | None = None,
    budget: Any = None,
    crops: int = 3,
    crop_size: int = 128,
) -> str:
    """The report's HTML. ``check`` is an ``edgesr.check/1`` file or document (default:
    ``RUN_DIR/check.json`` if present); ``budget`` (a name, path or Budget) checks the stages
    on the fly instead."""
    from edgesr.check.budget import (
        check_compress_run,
        check_document,
        load_check_json,
        load_manifest,
    )

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; pass a compress run directory.")
    manifest = load_manifest(run_dir)
    if not manifest["stages"]:
        raise DataError(f"{run_dir}/manifest.json lists no stages; the run did not finish.")
    origin = ""
    check_doc: dict[str, Any] | None = None
    if budget is not None:
        check_doc = check_document(check_compress_run(run_dir, budget, write=False))
        origin = f"checked now against {budget if isinstance(budget, (str, Path)) else budget.name}"
    elif isinstance(check, dict):
        check_doc, origin = check, "given check document"
    elif check is not None:
        check_doc, origin = load_check_json(check), str(check)
    elif (run_dir / "check.json").is_file():
        check_doc, origin = load_check_json(run_dir / "check.json"), str(run_dir / "check.json")
    timed = any(s.get("latency_p50_ms") is not None for s in manifest["stages"])
    plot_html = (
        f"<img alt='PSNR-Y against p50 latency' src='{_b64_png(plot_psnr_latency(manifest))}' "
        "style='max-width:100%'>"
        if timed
        else "<p>The run measured no latency (compress was called without a latency function).</p>"
    )
    crop_list, why = (
        make_crops(manifest, run_dir, count=crops, size=crop_size)
        if crops > 0
        else ([], "disabled")
    )
    lat = manifest.get("latency") or {}
    size = lat.get("size") or ["?", "?"]
    title = f"edgesr report — {manifest.get('recipe', run_dir.name)}"
    generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = (
        f"Recipe <b>{_e(manifest.get('recipe', '?'))}</b> (hash {_e(manifest.get('recipe_hash', '?'))})"
        f" · FP32 from {_e(manifest.get('source', '?'))}"
        f"<br>Quality: PSNR/SSIM on the Y channel over <b>{_e(manifest.get('eval_data', '?'))}</b>"
        f" ({_e(manifest.get('eval_images', '?'))} images, standard protocol)"
        f" · Latency: {_e(lat.get('backend', '?'))}, LR {_e(size[0])}×{_e(size[1])}, "
        f"threads {_e(lat.get('threads', '?'))}, {_e(lat.get('runs', '?'))} runs"
        f"<br>edgesr {_e(manifest.get('edgesr_version', '?'))} · torch {_e(manifest.get('torch_version', '?'))}"
        f" · run dir {_e(run_dir.resolve())} · generated {generated}"
    )
    body = (
        f"<h1>{_e(title)}</h1><p class='meta'>{meta}</p>"
        f"<h2>Stages</h2>{_stage_table(manifest)}"
        f"<h2>PSNR vs latency</h2>{plot_html}"
        f"<h2>Budget</h2>{_verdicts(check_doc, origin)}"
        f"<h2>Crops</h2>{_crops_html(crop_list, why)}"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    check: str | Path | dict[str, Any] | None = None,
    budget: Any = None,
    crops: int = 3,
    force: bool = False,
) -> Path:
    """Write the report (default ``RUN_DIR/report.html``); returns its path."""
    from edgesr.outputs import atomic_write_bytes, refuse_existing

    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    refuse_existing(out, force=force, hint="or choose another --out")
    atomic_write_bytes(
        out, build_report(run_dir, check=check, budget=budget, crops=crops).encode("utf-8")
    )
    return out


def screenshot(
    html_path: str | Path, png_path: str | Path, *, width: int = 1280, height: int = 2000
) -> Path:
    """Render the report with headless Chromium (to check it displays); needs ``chromium``."""
    import shutil
    import subprocess
    import tempfile

    exe = next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )
    if exe is None:
        from edgesr.errors import DependencyError

        raise DependencyError(
            "rendering the report needs Chromium; install it (apt-get install chromium)."
        )
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            Path(html_path).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not png_path.is_file():
        raise EdgesrError(f"chromium could not render {html_path}: {proc.stderr.strip()[-400:]}")
    return png_path
