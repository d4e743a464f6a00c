"""``edgesr upscale``: run an SR model on your own images, folders, videos and camera frames.

The Upscaler (:mod:`edgesr.runtime.upscaler`) and ``open_upscaler`` (:mod:`edgesr.upscale.engine`)
are re-exported lazily so ``import edgesr.upscale`` stays light (no torch, OpenCV or ONNX Runtime
until a model is opened).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FrameTimes", "Upscaler", "open_upscaler"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgesr.upscale import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'edgesr.upscale' has no attribute {name!r}")
