"""The CLI end to end, in subprocesses: exit codes, messages without tracebacks, outputs kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesr.data.embedded import procedural_image
from edgesr.data.io import write_image
from edgesr.errors import ConfigError, DataError, ModelError, OutputExistsError


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgesr", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(3)
    for i, kind in enumerate(["dead_leaves", "text", "zone_plate"]):
        write_image(folder / f"{kind}_{i}.png", procedural_image(kind, size=96, rng=rng))
    return folder


def test_version_and_recipes_listing() -> None:
    out = run("--version")
    assert out.returncode == 0 and "edgesr" in out.stdout
    listing = run("recipes", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert {"espcn_x4", "fsrcnn_x4", "anchornet_x4"} <= set(rows)
    assert rows["espcn_x4"]["params"] == "24,752"


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (("train", "--recipe", "espcn_x5"), ConfigError.exit_code, "Did you mean espcn_x4"),
        (
            ("train", "--recipe", "espcn_x4", "--set", "train.stpes=1"),
            ConfigError.exit_code,
            "train.steps",
        ),
        (
            ("train", "--recipe", "espcn_x4", "--data", "/nonexistent/folder"),
            DataError.exit_code,
            "/nonexistent/folder",
        ),
        (
            ("evaluate", "--model", "/nonexistent/model.safetensors"),
            ModelError.exit_code,
            "does not exist",
        ),
        (("evaluate", "--model", "bicubic"), ConfigError.exit_code, "--scale"),
        (
            ("evaluate", "--model", "bicubic", "--scale", "4", "--data", "/nonexistent/set"),
            DataError.exit_code,
            "/nonexistent/set",
        ),
    ],
)
def test_errors_exit_codes_without_traceback(
    tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    out = run(*args, "--out", str(tmp_path / "o")) if args[0] == "train" else run(*args)
    assert out.returncode == code, out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_not_a_model_file(tmp_path: Path) -> None:
    bogus = tmp_path / "weights.safetensors"
    bogus.write_text("not weights")
    out = run("evaluate", "--model", str(bogus))
    assert out.returncode == ModelError.exit_code and "Traceback" not in out.stderr
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x00garbage")
    out = run("evaluate", "--model", str(onnx))
    assert out.returncode == ModelError.exit_code and "edgesr export" in out.stderr


def test_train_then_evaluate_json(tmp_path: Path, hr_dir: Path) -> None:
    run_dir = tmp_path / "run"
    sets = [
        "data.lr_patch=12",
        "data.batch_size=4",
        "train.steps=6",
        "train.threads=1",
        "train.warmup_steps=0",
    ]
    flags = [x for s in sets for x in ("--set", s)]
    out = run(
        "train",
        "--recipe",
        "anchornet_x2",
        "--data",
        str(hr_dir),
        "--val",
        "none",
        "--out",
        str(run_dir),
        "--no-progress",
        *flags,
    )
    assert out.returncode == 0, out.stderr
    assert (run_dir / "model.safetensors").is_file()

    again = run(
        "train", "--recipe", "anchornet_x2", "--data", str(hr_dir), "--out", str(run_dir), *flags
    )
    assert again.returncode == OutputExistsError.exit_code and "--resume" in again.stderr

    report = tmp_path / "eval.json"
    out = run("evaluate", "--model", str(run_dir), "--data", str(hr_dir), "--json", str(report))
    assert out.returncode == 0, out.stderr
    data = json.loads(report.read_text())
    assert data["scale"] == 2
    assert [i["name"] for i in data["images"]] == sorted(i["name"] for i in data["images"])
    assert len(data["images"]) == 3
    for key in ("psnr_y", "ssim_y"):
        assert np.isfinite(data["mean"][key]) and np.isfinite(data["bicubic"][key])
    assert "mean" in out.stdout and "bicubic" in out.stdout

    before = report.read_text()
    out = run(
        "evaluate",
        "--model",
        "bicubic",
        "--scale",
        "2",
        "--data",
        str(hr_dir),
        "--json",
        str(report),
    )
    assert out.returncode == OutputExistsError.exit_code
    assert report.read_text() == before


def test_evaluate_scale_mismatch(tmp_path: Path, hr_dir: Path) -> None:
    out = run(
        "evaluate",
        "--recipe",
        "espcn_x4",
        "--model",
        "bicubic",
        "--scale",
        "4",
        "--data",
        str(hr_dir),
    )
    assert out.returncode == 0, out.stderr  # bicubic ignores the recipe's weights


def test_import_is_light() -> None:
    """`import edgesr` (and the CLI module) must not pull in NNCF, TensorRT or ONNX Runtime."""
    code = (
        "import sys, edgesr, edgesr.cli, edgesr.recipe, edgesr.export, edgesr.compress\n"
        "heavy = [m for m in ('nncf', 'tensorrt', 'tensorrt_rtx', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_flat_api_names_resolve_and_do_not_shadow_stages() -> None:
    """Every name in edgesr.__all__ loads, and none hides a stage package (edgesr.train stays
    the package after `import edgesr.train.loop`)."""
    import importlib

    import edgesr

    for name in edgesr.__all__:
        assert getattr(edgesr, name) is not None, name
    stages = {
        p.name for p in Path(edgesr.__file__).parent.iterdir() if (p / "__init__.py").is_file()
    }
    assert not stages & set(edgesr.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgesr.nope  # noqa: B018
    assert callable(importlib.import_module("edgesr.compress").compress)


def test_evaluate_on_camera_degraded_frames(tmp_path: Path, hr_dir: Path) -> None:
    """Seeded camera LR frames: reproducible, different from bicubic and from another seed."""

    def mean_psnr(*extra: str) -> float:
        report = tmp_path / f"eval_{len(list(tmp_path.iterdir()))}.json"
        out = run(
            "evaluate", "--recipe", "espcn_x2", "--data", str(hr_dir), "--json", str(report), *extra
        )
        assert out.returncode == 0, out.stderr
        return json.loads(report.read_text())["mean"]["psnr_y"]

    bicubic_lr = mean_psnr()
    camera = mean_psnr("--degradation", "camera", "--seed", "1")
    assert camera == mean_psnr("--degradation", "camera", "--seed", "1")
    assert camera != mean_psnr("--degradation", "camera", "--seed", "2")
    # A bicubic-trained net does worse on blurred, noisy, JPEG'd frames.
    assert camera < bicubic_lr - 0.5


def test_resolve_eval_data_rejects_unknown_degradation() -> None:
    from edgesr.evaluate import resolve_eval_data

    with pytest.raises(ConfigError, match="unknown degradation 'jpeg'"):
        resolve_eval_data("embedded", scale=2, degradation="jpeg")
