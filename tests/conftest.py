from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The public SR data beside the checkout (or $EDGESR_SHARED_DATA), if present."""
    env = os.environ.get("EDGESR_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "needs ../shared/data (or $EDGESR_SHARED_DATA) with the SR benchmark/training sets"
        )
    return path


@pytest.fixture
def set5(shared_data: Path) -> Path:
    path = shared_data / "benchmarks" / "Set5"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test convs run much faster on one thread than fighting for two busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- INT8 on every CPU -------------------------------------------------------------------------
# ONNX Runtime's fused u8 x s8 kernels differ between CPUs: VNNI/AMX/ARM accumulate in int32,
# x86 without VNNI (AVX2: e.g. AMD Zen 1-3) sums pairs in a saturating int16. Tests run every
# INT8 model three ways: ORT's default (fused) session, its unfused float reference (graph
# optimizations off: DequantizeLinear -> float Conv -> QuantizeLinear, exact), and, where
# qemu-user is installed, the fused kernels on an emulated Haswell (AVX2, no VNNI), so a model
# that saturates fails on any CI machine, VNNI or not.
_NO_VNNI_SCRIPT = """
import sys
import numpy as np
from edgesr.runtime.runners import OnnxRuntimeRunner
x = np.load(sys.argv[2])
if sys.argv[4] == "runner":  # edgesr's session
    with OnnxRuntimeRunner(sys.argv[1], threads=1) as runner:
        np.save(sys.argv[3], runner.infer(x))
elif sys.argv[4] == "c":  # libedgesr, the C runtime
    from edgesr.runtime.capi import CRunner
    with CRunner(sys.argv[1], threads=1) as runner:
        np.save(sys.argv[3], runner.infer(x))
else:  # a plain ORT session, as a user's own code makes one
    import onnxruntime as ort
    sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    np.save(sys.argv[3], sess.run(None, {sess.get_inputs()[0].name: x})[0])
"""


class Int8Paths:
    """Run an ONNX model on the ways CPUs differ (see the comment above)."""

    def __init__(self, tmp: Path) -> None:
        import shutil

        self.tmp = tmp
        self.qemu = shutil.which("qemu-x86_64")

    def fused(self, path: Path, x):
        from edgesr.runtime.runners import OnnxRuntimeRunner

        with OnnxRuntimeRunner(path, threads=1) as runner:
            return runner.infer(x)

    def reference(self, path: Path, x):
        import onnxruntime as ort

        from edgesr.runtime.runners import ort_session_options

        opts = ort_session_options(1)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]

    def no_vnni(self, path: Path, x, *, session: str = "runner", required: bool = True):
        """The fused kernels on an emulated x86 CPU without VNNI.

        ``session``: "runner" (edgesr's OnnxRuntimeRunner), "c" (libedgesr's CRunner) or
        "plain" (ORT's defaults).
        Without qemu-user the test skips (``required``) or this returns None.
        """
        import platform
        import subprocess
        import sys

        import numpy as np

        if self.qemu is None or platform.machine() != "x86_64":
            if not required:
                return None
            pytest.skip("needs qemu-user on x86-64 (apt-get install qemu-user) to emulate AVX2")
        src, out = self.tmp / "x.npy", self.tmp / "y.npy"
        np.save(src, x)
        proc = subprocess.run(
            [self.qemu, "-cpu", "Haswell", sys.executable, "-c", _NO_VNNI_SCRIPT, str(path)]
            + [str(src), str(out), session],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return np.load(out)


@pytest.fixture
def int8_paths(tmp_path: Path) -> Int8Paths:
    return Int8Paths(tmp_path)


def assert_int8_same_on_every_cpu(paths: Int8Paths, path: Path, x) -> None:
    """An INT8 model gives the same 8-bit pixels on ORT's fused kernels (this CPU), its float
    reference and an emulated CPU without VNNI (where qemu-user is installed)."""
    reference = paths.reference(path, x)
    assert grey_levels(paths.fused(path, x), reference) <= 1, path
    no_vnni = paths.no_vnni(path, x, required=False)
    if no_vnni is not None:
        assert grey_levels(no_vnni, reference) <= 1, path


def grey_levels(a, b) -> float:
    """The largest difference of two [0,1] outputs, in 8-bit grey levels after rounding."""
    import numpy as np

    def u8(v):
        return np.round(np.clip(v, 0, 1) * 255)

    return float(np.abs(u8(a) - u8(b)).max())


@pytest.fixture(scope="session")
def clib():
    """libedgesr loaded through ctypes: the built library, else built now, else a skip."""
    import shutil

    from edgesr.errors import DependencyError
    from edgesr.runtime import capi

    path = capi.find_library()
    if path is None:
        if shutil.which("cmake") is None or shutil.which("cc") is None:
            pytest.skip(
                "libedgesr is not built and cmake/cc are missing; build it with "
                "`bash deploy/runtime/build.sh` (Debian: apt-get install cmake build-essential)"
            )
        try:
            path = capi.build_library()
        except DependencyError as exc:
            pytest.skip(f"cannot build libedgesr here: {exc}")
    return capi.load_library(path)


def write_standin_benchmarks(
    root: Path, sets: dict[str, list[str]], *, kinds: tuple[str, ...], size: int = 48, seed: int = 0
) -> Path:
    """Procedural images named like benchmark files (``root/Set5/baby.png``, ...): a stand-in for
    the benchmark sets that the benchmark scripts' tests run on. Image i of a set is of kind
    ``kinds[i % len(kinds)]``."""
    import numpy as np

    from edgesr.data.embedded import procedural_image
    from edgesr.data.io import write_image

    rng = np.random.default_rng(seed)
    for folder, names in sets.items():
        for i, name in enumerate(names):
            image = procedural_image(kinds[i % len(kinds)], size=size, rng=rng)
            write_image(root / folder / f"{name}.png", image)
    return root
