"""edgesr tune storages for real: two `edgesr tune` processes sharing one study (SQLite with a
lock timeout, and a PostgreSQL server this test starts), and a worker killed mid-trial whose
trial is failed and re-run, never counted twice."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

optuna = pytest.importorskip(
    "optuna", reason="edgesr tune needs optuna: pip install 'edgesr[tune]'"
)

pytestmark = pytest.mark.slow

SPACE = """schema: 1
params:
  model.params.num_feat: [8, 16, 24, 32]
  model.params.num_feat2: [8, 16]
"""


def _images(folder: Path, n: int, size: int, seed: int) -> str:
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (5, 5), 2)
        cv2.imwrite(str(folder / f"{i}.png"), img)
    return str(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tune-storage")
    space = root / "space.yaml"
    space.write_text(SPACE)
    return {
        "train": _images(root / "train", 3, 96, 1),
        "val": _images(root / "val", 2, 48, 2),
        "space": str(space),
    }


def _command(setup: dict[str, str], out: Path, trials: int, *extra: str, steps: int = 6):
    return [
        sys.executable,
        "-m",
        "edgesr",
        "tune",
        "--recipe",
        "espcn_x4",
        "--space",
        setup["space"],
        "--trials",
        str(trials),
        "--sampler",
        "random",
        "--out",
        str(out),
        "--data",
        setup["train"],
        "--set",
        f"train.steps={steps}",
        "--set",
        "train.warmup_steps=0",
        "--set",
        "data.lr_patch=8",
        "--set",
        "data.batch_size=2",
        "--set",
        f"data.val={setup['val']}",
        "--set",
        "compress.latency_size=[24,32]",
        *extra,
    ]


def _env() -> dict[str, str]:
    # One torch/ORT thread per worker: two workers share two cores.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _finished(study) -> list:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def _two_workers(setup: dict[str, str], out: Path, storage: str, trials: int = 5):
    args = _command(setup, out, trials, "--storage", storage, "--study", "shared")
    procs = [
        subprocess.Popen(
            args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log
    study = optuna.load_study(study_name="shared", storage=storage)
    done = _finished(study)
    # Exactly --trials finished, each number once, and both processes ran some.
    assert len(done) == trials, [(t.number, t.state.name) for t in study.trials]
    assert len({t.number for t in done}) == trials
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2, workers
    assert json.loads((out / "trials.json").read_text())
    return study


def test_two_processes_share_one_sqlite_study(setup, tmp_path):
    """SQLite with a lock timeout holds two writers (Optuna's FAQ warns of 'database is
    locked' without one)."""
    _two_workers(setup, tmp_path / "out", f"sqlite:///{tmp_path / 'shared.db'}")


def test_workers_option_starts_processes_that_share_the_study(setup, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        _command(setup, out, 4, "--workers", "2"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout
    study = optuna.load_study(study_name="espcn_x4-tune", storage=f"sqlite:///{out / 'study.db'}")
    done = _finished(study)
    assert len(done) == 4 and len({t.user_attrs["worker"] for t in done}) == 2
    assert not (out / ".tune-recipe.yaml").exists()


def test_killed_trial_is_failed_and_rerun_not_counted_twice(setup, tmp_path):
    out = tmp_path / "out"
    storage = f"sqlite:///{out / 'study.db'}"
    # Trials long enough (a few seconds of training) to kill one mid-way.
    slow = _command(setup, out, 2, "--heartbeat", "1", steps=150)
    victim = subprocess.Popen(
        slow, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "trials" / "0000" / "run" / "log.jsonl").exists():
                break
            assert victim.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("trial 0 never started training")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    study = optuna.load_study(study_name="espcn_x4-tune", storage=storage)
    assert [t.state.name for t in study.trials] == ["RUNNING"]
    killed_params = study.trials[0].params

    # The same command again: the dead trial is found (no heartbeat for 3 s) and re-run.
    again = subprocess.run(
        slow, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout
    study = optuna.load_study(study_name="espcn_x4-tune", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == 1 and states[0] == "FAIL"
    assert len(_finished(study)) == 2  # --trials 2: the dead attempt does not count
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].params == killed_params


# ------------------------------------------------------------------------------ PostgreSQL


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of our own on a Unix socket in a temp folder; its URL."""
    pytest.importorskip("psycopg2", reason="PostgreSQL storage needs psycopg2-binary")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install postgresql"
        )
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as a regular system user.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start the server as 'postgres'")
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="edgesr-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", 5999
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "edgesr"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        start = subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                f"-k {root} -c listen_addresses='' -p {port}",
                "-l",
                str(root / "server.log"),
                "-w",
                "start",
            ],
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not be initialised here: {exc}")
    if start.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {start.stderr.decode()[-300:]} {log[-300:]}")
    try:
        yield f"postgresql+psycopg2://edgesr@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_share_a_postgresql_study(setup, tmp_path, postgres):
    study = _two_workers(setup, tmp_path / "out", postgres)
    # The study lives in the server, not in --out.
    assert not (tmp_path / "out" / "study.db").exists()
    assert study.user_attrs["recipe"] == "espcn_x4"
