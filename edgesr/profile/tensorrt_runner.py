"""A serialized TensorRT engine as an edgesr runner.

The engine code is the device profiler's (:class:`edgesr.profile.minimal.TrtModel`), so a
Jetson without edgesr and a workstation with it time an engine the same way: host->device
copy, ``execute_async_v3``, device->host copy and stream sync inside the timed call. TensorRT
and the CUDA bindings (cuda-python) are imported when the runner is activated, never before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesr.profile.errors import edgesr_errors
from edgesr.runtime.runners import BaseRunner


class TensorRTRunner(BaseRunner):
    """Runs a ``.engine``/``.plan`` file; scale from the engine's shapes, colour from its
    channels (or the ``edgesr.color`` of its ``<engine>.json`` sidecar)."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, *, name: str = "") -> None:
        super().__init__(name or Path(path).name)
        self.path = Path(path)
        self.model: Any = None

    def activate_impl(self) -> None:
        from edgesr.profile.minimal import TrtModel

        with edgesr_errors():
            self.model = TrtModel(self.path)
        self.scale, self.color = self.model.scale, self.model.color

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        with edgesr_errors():
            return self.model(lr)

    def deactivate_impl(self) -> None:
        if self.model is not None:
            with edgesr_errors():
                self.model.close()
            self.model = None
