"""The HTML report of a compress run: self-contained, with the stage table, plot, verdicts and
crops, and rendered by headless Chromium when it is installed.

The run directory is small but real: interpolation nets exported with torch.onnx.export (FP32
bilinear, "pruned" nearest, and an ONNX Runtime QDQ INT8 of the bilinear one), measured with
edgesr's own evaluate() and time_runner() on procedural images, in the manifest.json schema of
``edgesr compress``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from test_profile import export_tiny_onnx

from edgesr.check.budget import check_compress_run, load_check_json
from edgesr.check.report import build_report, detail_window, screenshot, write_report
from edgesr.cli import main
from edgesr.compress.stages import StageResult
from edgesr.errors import ConfigError, OutputExistsError

BUDGET = {
    "schema": 1,
    "name": "report-test",
    "description": "tiny x2 for the report test",
    "device": "the test machine",
    "scale": 2,
    "backend": "onnxruntime",
    "frame": {"input": "48x64"},
    "eval_data": "hr",
    "limits": {
        "latency_p50": "1 s",
        "latency_p99": "1 s",
        "psnr_gain": "0.1 dB",
        "model_size": "64 KiB",
        "power": "5 W",
    },
}


def quantize_qdq(src: Path, dst: Path) -> Path:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.frames = iter(
                [{"lr": rng.random((1, 1, 16, 16), dtype=np.float32)} for _ in range(4)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.frames, None)

    quantize_static(
        str(src),
        str(dst),
        Frames(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    model = onnx.load(str(dst))
    for prop in model.metadata_props:
        if prop.key == "edgesr.precision":
            prop.value = "int8"
    onnx.save(model, str(dst))
    return dst


def make_run_dir(root: Path) -> Path:
    from edgesr.data.embedded import procedural_image
    from edgesr.data.io import write_image
    from edgesr.evaluate import evaluate
    from edgesr.profile.latency import time_runner
    from edgesr.runtime.runners import OnnxRuntimeRunner

    hr = root / "hr"
    rng = np.random.default_rng(5)
    for i, kind in enumerate(("text", "zone_plate", "dead_leaves")):
        write_image(hr / f"{i}_{kind}.png", procedural_image(kind, size=96, rng=rng))
    run = root / "run"
    run.mkdir()
    export_tiny_onnx(run / "fp32.onnx", mode="bilinear")
    export_tiny_onnx(run / "pruned.onnx", mode="nearest")
    quantize_qdq(run / "fp32.onnx", run / "int8.onnx")
    stages, bicubic = [], {}
    size = (48, 64)
    for name, target, note in (
        ("fp32", "any", "bilinear taps"),
        ("pruned", "any", "nearest taps <not really pruned>"),
        ("int8", "onnxruntime-cpu", "ORT static QDQ"),
    ):
        path = run / f"{name}.onnx"
        scores = evaluate(OnnxRuntimeRunner(path, threads=1), hr, scale=2)
        bicubic = scores.bicubic
        lat = time_runner(OnnxRuntimeRunner(path, threads=1), size=size, runs=5, warmup=1)
        row = StageResult(
            name,
            target,
            path.name,
            None,
            36,
            36 * size[0] * size[1] * 2 / 1e9,
            path.stat().st_size,
            scores.mean["psnr_y"],
            scores.mean["ssim_y"],
            lat.p50_ms,
            lat.p90_ms,
            notes=note,
        )
        # As compress fills them: relative to the first (fp32) stage, which gets 1.0 and 0.0.
        fp32 = stages[0] if stages else row
        row.speedup_vs_fp32 = fp32.latency_p50_ms / row.latency_p50_ms
        row.delta_psnr_vs_fp32 = row.psnr_y - fp32.psnr_y
        stages.append(row)
    manifest = {
        "edgesr_version": "0.1.0",
        "recipe": "tiny_x2",
        "recipe_hash": "0123456789abcdef",
        "source": "hand-set interpolation taps",
        "eval_data": str(hr),
        "eval_images": 3,
        "latency": {"backend": "onnxruntime-cpu", "size": list(size), "threads": 1, "runs": 5},
        "bicubic": bicubic,
        "stages": [asdict(s) for s in stages],
        "wall_time_s": 1.0,
        "torch_version": "test",
        "python": sys.version.split()[0],
    }
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("compress"))


class Page(HTMLParser):
    """Collects what a self-contained page must (not) have."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str]] = []
        self.external: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html_text: str) -> Page:
    page = Page()
    page.feed(html_text)
    return page


def decode(img: dict[str, str]) -> np.ndarray:
    import cv2

    assert img["src"].startswith("data:image/png;base64,")
    raw = np.frombuffer(base64.b64decode(img["src"].split(",", 1)[1]), np.uint8)
    decoded = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def test_report_is_self_contained(run_dir: Path) -> None:
    out = write_report(run_dir, crops=2)
    assert out == run_dir / "report.html"
    html_text = out.read_text(encoding="utf-8")
    page = parse(html_text)
    assert page.external == [] and "script" not in page.tags and "link" not in page.tags
    text = " ".join(page.text)
    for needle in (
        "fp32",
        "pruned",
        "int8",
        "bicubic",
        "PSNR-Y",
        "GMACs",
        "tiny_x2",
        "No budget check",
    ):
        assert needle in text
    assert "&lt;not really pruned&gt;" in html_text  # escaped, not markup
    plot = decode(page.imgs[0])
    assert plot.shape[1] > 600 and plot.std() > 5
    tiles = page.imgs[1:]
    assert [t["alt"] for t in tiles] == ["bicubic", "fp32", "pruned", "int8", "ground truth"] * 2
    assert all(decode(t).shape[:2] == (96, 96) for t in tiles)
    # The two images with the most detailed window, most detailed first.
    from edgesr.data.io import read_image
    from edgesr.evaluate import y_of

    hr = Path(json.loads((run_dir / "manifest.json").read_text())["eval_data"])
    scores = {p.stem: detail_window(y_of(read_image(p)), 96)[2] for p in sorted(hr.glob("*.png"))}
    shown = re.findall(r"<p class='meta'><b>([^<]+)</b> — 96×96 px HR crop", html_text)
    assert shown == sorted(scores, key=lambda k: -scores[k])[:2]
    with pytest.raises(OutputExistsError):
        write_report(run_dir, crops=0)


def test_photos_column_and_plot_when_the_run_has_them(run_dir: Path, tmp_path: Path) -> None:
    """On the embedded set the table adds Δ photos and the plot ranks by the photos' PSNR."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report.html"))
    manifest = json.loads((run / "manifest.json").read_text())
    for i, stage in enumerate(manifest["stages"]):
        stage["psnr_y_by_kind"] = {"photos": 30.0 - 0.25 * i, "synthetic": 40.0}
    (run / "manifest.json").write_text(json.dumps(manifest))
    html_text = write_report(run, crops=0).read_text(encoding="utf-8")
    assert "<th>Δ photos</th>" in html_text
    assert [float(v) for v in re.findall(r"</td><td>([+-]\d\.\d\d)</td><td>0\.", html_text)] == [
        0.0,
        -0.25,
        -0.5,
    ]
    plot = decode(parse(html_text).imgs[0])
    plain = decode(
        parse(write_report(run_dir, crops=0, out=tmp_path / "p.html").read_text()).imgs[0]
    )
    assert plot.shape == plain.shape and not np.array_equal(plot, plain)


def test_crops_differ_by_stage(run_dir: Path) -> None:
    from edgesr.check.budget import load_manifest
    from edgesr.check.report import make_crops

    crops, why = make_crops(load_manifest(run_dir), run_dir, count=1)
    assert why == "" and len(crops) == 1
    tiles = {label: (rgb, psnr) for label, rgb, psnr, _ in crops[0]["tiles"]}
    assert not np.array_equal(tiles["fp32"][0], tiles["pruned"][0])
    assert tiles["ground truth"][1] is None and tiles["bicubic"][1] > tiles["pruned"][1]


def test_detail_window_finds_the_texture() -> None:
    y = np.zeros((64, 80))
    y[30:46, 50:66] = np.random.default_rng(0).random((16, 16))
    top, left, score = detail_window(y, 16, stride=2)
    assert abs(top - 30) <= 2 and abs(left - 50) <= 2 and score > 0


def test_report_shows_budget_verdicts(run_dir: Path, tmp_path: Path) -> None:
    budget = tmp_path / "b.yaml"
    budget.write_text(json.dumps(BUDGET))
    html_text = build_report(run_dir, budget=budget, crops=0)
    page = parse(html_text)
    text = " ".join(page.text)
    assert "report-test" in text and "checked now against" in text
    for badge in (
        "PASS",
        "FAIL",
        "MISSING",
    ):  # interpolation does not beat bicubic: psnr_gain fails
        assert badge in text
    assert "a compress run measures no power" in text
    # A check.json in the run directory is picked up without asking.
    checks = check_compress_run(run_dir, budget, allow_unmeasured=["power"])
    assert load_check_json(run_dir / "check.json")["checks"][-1]["subject"] == "int8"
    assert [c.verdict for c in checks] == ["fail"] * 3
    assert {x.key for x in checks[0].failed} == {"psnr_gain"}
    text = " ".join(parse(build_report(run_dir, crops=0)).text)
    assert "WAIVED" in text and str(run_dir / "check.json") in text


def test_report_errors(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no manifest.json"):
        build_report(tmp_path)
    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["eval_data"] = str(tmp_path / "gone")
    (bad / "int8.onnx").write_bytes(b"broken")
    (bad / "manifest.json").write_text(json.dumps(manifest))
    page = parse(build_report(bad, crops=2))
    assert "are not available here" in " ".join(page.text)
    manifest["eval_data"] = run_dir.parent / "hr"
    (bad / "manifest.json").write_text(json.dumps(manifest, default=str))
    text = " ".join(parse(build_report(bad, crops=1)).text)
    assert "not runnable" in text


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgesr", "report", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_report(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = cli(str(run_dir), "--out", str(out), "--crops", "1")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and f"wrote {out}" in proc.stdout
    # The rest in this process: same parser and error mapping, no interpreter start-up.
    assert main(["report", str(run_dir), "--out", str(out)]) == OutputExistsError.exit_code
    assert main(["report", str(tmp_path / "nothing")]) == ConfigError.exit_code
    both = main(["report", str(run_dir), "--check", "a.json", "--budget", "b"])
    assert both == ConfigError.exit_code
    assert main(["report", str(run_dir), "--crops", "-1"]) == ConfigError.exit_code


def test_missing_matplotlib_is_a_dependency_error(run_dir: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from edgesr.errors import DependencyError\n"
        "from edgesr.check.report import build_report\n"
        "try:\n"
        f"    build_report({str(run_dir)!r}, crops=0)\n"
        "except DependencyError as exc:\n"
        "    print('DependencyError:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "DependencyError:" in proc.stdout and "edgesr[report]" in proc.stdout, proc.stderr


def chromium() -> str | None:
    return next(
        (n for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    import cv2

    out = write_report(run_dir, tmp_path / "report.html", crops=2)
    png = screenshot(out, tmp_path / "report.png", width=1280, height=1600)
    shot = cv2.imread(str(png))
    assert shot.shape[:2] == (1600, 1280)
    # Rendered content, not a blank page: the plot and crops put plenty of non-white pixels in.
    assert (shot < 250).any(axis=2).mean() > 0.05
