"""Tune stage: multi-objective search (PSNR against latency) over recipe and architecture knobs.

:mod:`edgesr.tune.space` parses and validates a search space (YAML), :mod:`edgesr.tune.study`
opens the Optuna study and its storage, :mod:`edgesr.tune.front` turns finished trials into
records, the Pareto front, the pick and the plot, and holds the early-stop rule. Running a
trial (train, export, evaluate, time) is orchestration: :mod:`edgesr.pipeline.tune`.
Optuna is imported only when a study is opened (``pip install 'edgesr[tune]'``).
"""
