"""Training stage: ``edgesr train``."""

from edgesr.train.loop import TrainResult, lr_at, train

__all__ = ["TrainResult", "lr_at", "train"]
