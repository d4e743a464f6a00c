"""The Optuna study behind ``edgesr tune``: storage, sampler, resume and the trial quota.

Storage: an SQLite file by default (``DIR/study.db``) opened with a 60 s lock timeout, so
several worker processes on one machine wait for the write lock instead of failing with
"database is locked" (tests/test_tune_storage.py runs two); a ``postgresql://`` URL lets workers
on several machines share a study. Both are Optuna RDB storages, the ones with heartbeats: a
worker killed mid-trial stops beating, and the next worker to start a trial marks it failed
and enqueues its parameters again (``RetryFailedTrialCallback``), so it is re-run, not lost.

The quota: ``--trials N`` is the number of finished (complete or pruned) trials of the study,
over all workers and runs; failed ones do not count, so none is counted twice.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, require

SAMPLERS = ("tpe", "nsga2", "random", "grid")
OPTUNA_INSTALL = "pip install 'edgesr[tune]' (optuna, psycopg2-binary)"
# Seconds between heartbeats, and without one before a running trial counts as dead.
HEARTBEAT_S = 10
GRACE_S = 30


def optuna_module() -> Any:
    optuna = require("optuna", purpose="edgesr tune", install=OPTUNA_INSTALL)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage_url(out: Path, storage: str | None) -> str:
    """``--storage`` or the default SQLite file in the output folder."""
    if storage:
        return storage
    return f"sqlite:///{(out / 'study.db').resolve()}"


# What the loser of two workers creating one new database's tables is told (SQLite, PostgreSQL).
_CREATE_RACE = ("already exists", "UNIQUE constraint failed", "duplicate key", "database is locked")


def open_storage(url: str, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S) -> Any:
    """An Optuna RDB storage with heartbeats and retry of dead trials."""
    optuna = optuna_module()
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ConfigError(
            f"--storage {url!r} is not a database URL; use sqlite:///PATH/study.db or "
            "postgresql://USER@HOST/DB (default: an SQLite file in --out)."
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        # Writers queue on SQLite's lock for up to 60 s instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        if url.startswith("postgresql"):
            require("psycopg2", purpose="a PostgreSQL --storage", install=OPTUNA_INSTALL)
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat_interval is "experimental" in Optuna
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=optuna.storages.RetryFailedTrialCallback(
                        max_retry=2
                    ),
                )
        except Exception as exc:  # SQLAlchemy/driver errors have many types
            # Workers started together race to create the tables of a new database; the
            # loser sees one of these and finds them made on its next try.
            if any(m in str(exc) for m in _CREATE_RACE) and attempt < 4:
                time.sleep(0.5 + attempt)
                continue
            raise ConfigError(
                f"cannot open the study storage {url} ({type(exc).__name__}: {exc}); check the "
                "URL, that the database server runs and that you may write there."
            ) from exc
    raise AssertionError("unreachable")


def make_sampler(
    name: str,
    *,
    grid: Callable[[], dict[str, list[Any]]],
    seed: int | None,
    constraints: Callable[[Any], Sequence[float]] | None,
) -> Any:
    optuna = optuna_module()
    if uses_set_constraint():
        constraints = None  # the trial sets its own (Optuna 5 deprecates constraints_func)
    if name == "tpe":
        # Few startup trials: tune studies are short.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=4, constraints_func=constraints, multivariate=True
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=8, constraints_func=constraints
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid(), seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}.")


def uses_set_constraint() -> bool:
    """Optuna >= 5 takes constraint values from ``trial.set_constraint``."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def open_study(
    storage: Any, name: str, *, directions: Sequence[str], sampler: Any, meta: dict[str, str]
) -> Any:
    """Create the study or load it; a resume must search the same space for the same recipe."""
    optuna = optuna_module()
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=list(directions),
        sampler=sampler,
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != list(directions):
        raise ConfigError(
            f"study '{name}' in this storage has other objectives; pass another --study or --out."
        )
    saved = study.user_attrs
    for key, value in meta.items():
        if key in saved and saved[key] != value:
            raise ConfigError(
                f"study '{name}' was started with a different {key} ({saved[key]} != {value}); "
                "resume it with the same recipe, --set and --space, or pass another --study."
            )
        if key not in saved:
            study.set_user_attr(key, value)
    return study


def counted(study: Any) -> int:
    """Finished trials (complete or pruned): what ``--trials`` counts."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def running_elsewhere(study: Any, number: int) -> int:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return sum(t.number != number for t in trials)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
