"""Orchestration: the sequences of stages, in one place.

``compress`` → export → measure → check → report (:mod:`edgesr.pipeline.compress`), profile →
check (:mod:`edgesr.pipeline.check`), and opening any model reference on any backend
(:mod:`edgesr.pipeline.models`). The build stages (train, compress, export, runtime, profile,
check) never import this package; the product commands on top of them (``edgesr upscale``,
``edgesr tune``, the CLI) do.
"""
