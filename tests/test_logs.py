"""edgesr.logs.quiet_third_party: real prints, loggers, warnings and fd-2 writes, no mocks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from edgesr.errors import DataError
from edgesr.logs import NOISY_LOGGERS, TAIL_LINES, quiet_third_party

# Every channel third-party code talks on, set up the way NNCF and torch set them up.
NOISY = """
import logging, os, sys, warnings
from edgesr.data.folders import DataWarning
from edgesr.errors import DataError
from edgesr.logs import quiet_third_party
from edgesr.runtime.upscaler import _radius_of

nncf = logging.getLogger("nncf")  # NNCF: INFO, its own handler on sys.stdout
nncf.setLevel(logging.INFO)
nncf.addHandler(logging.StreamHandler(sys.stdout))
nncf.propagate = False
logging.getLogger("torch").addHandler(logging.StreamHandler())  # torch: one on sys.stderr

class TracerWarning(Warning):
    pass

def noise(n=1):
    print("third-party print")
    sys.stdout.write("Statistics collection ━━━ 100% 32/32\\r")
    nncf.info("INFO:nncf:quantizer")
    logging.getLogger("torch.utils._pytree").warning("W1207 pytree KernelPreference")
    warnings.warn("third-party UserWarning")
    warnings.warn("a TracerWarning", TracerWarning)
    warnings.warn("a DeprecationWarning", DeprecationWarning)
    sys.stderr.write("python stderr line\\n")
    for i in range(n):
        os.write(2, f"libpng warning: iCCP {i}\\n".encode())

mode = sys.argv[1]
with quiet_third_party(verbose=mode == "verbose") as output:
    noise(50 if mode in ("crash", "edgesr-error", "interrupt") else 1)
    output.log("edgesr line")
    warnings.warn("edgesr's own warning", DataWarning)
    _radius_of(object())  # a plain UserWarning from edgesr code, attributed to this script
    if mode == "crash":
        raise RuntimeError("boom")
    if mode == "edgesr-error":
        raise DataError("no images")
    if mode == "interrupt":
        raise KeyboardInterrupt
print("after the block")
os.write(2, b"fd 2 after the block\\n")
"""

THIRD_PARTY = [
    "third-party print",
    "Statistics collection",
    "INFO:nncf:quantizer",
    "W1207 pytree",
    "third-party UserWarning",
    "TracerWarning",
    "DeprecationWarning",
    "python stderr line",
    "libpng warning",
]


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", textwrap.dedent(NOISY), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_only_edgesr_lines_show() -> None:
    proc = _run("quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "edgesr line\nafter the block\n"
    # edgesr's own warnings still reach the user; fd 2 works again after the block.
    err = proc.stderr.splitlines()
    assert len(err) == 3, proc.stderr
    assert "DataWarning: edgesr's own warning" in err[0]
    assert "UserWarning: cannot inspect" in err[1]
    assert err[2] == "fd 2 after the block"
    for needle in THIRD_PARTY:
        assert needle not in proc.stdout + proc.stderr, needle


def test_verbose_shows_everything() -> None:
    proc = _run("verbose")
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    for needle in [*THIRD_PARTY, "edgesr line", "edgesr's own warning", "fd 2 after the block"]:
        assert needle in both, needle


def test_a_crash_keeps_the_tail_of_what_was_hidden() -> None:
    proc = _run("crash")
    assert proc.returncode == 1
    err = proc.stderr
    assert "RuntimeError: boom" in err and "Traceback" in err
    assert "libpng warning: iCCP 49" in err
    assert f"the last {TAIL_LINES} lines" in err
    tail = err.split("---\n")[1].splitlines()
    assert len(tail) == TAIL_LINES and tail[-1] == "libpng warning: iCCP 49"
    assert "libpng warning: iCCP 0\n" not in err  # only the tail, not everything
    assert proc.stdout == "edgesr line\n"


@pytest.mark.parametrize("mode", ["edgesr-error", "interrupt"])
def test_an_edgesr_error_or_ctrl_c_prints_no_tail(mode: str) -> None:
    proc = _run(mode)
    assert proc.returncode != 0
    assert "libpng" not in proc.stderr and "hidden third-party output" not in proc.stderr
    assert ("DataError: no images" if mode == "edgesr-error" else "KeyboardInterrupt") in (
        proc.stderr
    )


def _fd2() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


@pytest.mark.parametrize("exc", [RuntimeError("boom"), DataError("bad"), KeyboardInterrupt()])
def test_everything_is_restored_after_an_exception(exc: BaseException) -> None:
    out, err, fd2, fds = sys.stdout, sys.stderr, _fd2(), len(os.listdir("/proc/self/fd"))
    filters, show = list(warnings.filters), warnings.showwarning
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    with pytest.raises(type(exc)), quiet_third_party() as output:
        assert sys.stdout is not out and sys.stderr is not err and _fd2() != fd2
        assert output.stdout is out
        assert all(logging.getLogger(n).level == logging.ERROR for n in NOISY_LOGGERS)
        raise exc
    assert sys.stdout is out and sys.stderr is err and _fd2() == fd2
    assert len(os.listdir("/proc/self/fd")) == fds
    assert warnings.filters == filters and warnings.showwarning is show
    assert {name: logging.getLogger(name).level for name in NOISY_LOGGERS} == levels


def test_verbose_changes_nothing() -> None:
    out, err, fd2 = sys.stdout, sys.stderr, _fd2()
    with quiet_third_party(verbose=True) as output:
        assert sys.stdout is out and sys.stderr is err and _fd2() == fd2
        assert output.stdout is out and output.stderr is err


def test_cli_verbose_flag_before_and_after_the_subcommand() -> None:
    from edgesr.cli import build_parser

    parser = build_parser()
    args = ["compress", "--recipe", "espcn_x4"]
    assert parser.parse_args(args).verbose is False
    assert parser.parse_args(["-v", *args]).verbose is True
    assert parser.parse_args([*args, "--verbose"]).verbose is True
    assert parser.parse_args(["recipes"]).verbose is False
