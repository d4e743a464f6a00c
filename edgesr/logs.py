"""Quiet third-party output: edgesr's own lines, and nothing else unless ``--verbose``.

NNCF, torch, ONNX and OpenCV talk on every channel there is: Python loggers (``INFO:nncf:``,
torch's ``W1207 ... _pytree.py``), the warnings module (``TracerWarning``), rich progress bars
written to whatever ``sys.stdout`` is at the time, and C code writing to file descriptor 2
(``libpng warning: iCCP ...``). Muting one channel leaves the others, so
:func:`quiet_third_party` mutes them all for one block and hands out writers bound to the
real terminal, captured before anything was redirected, for the lines edgesr means to show.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import IO, TextIO

from edgesr.errors import EdgesrError

__all__ = ["NOISY_LOGGERS", "Output", "quiet_third_party"]

NOISY_LOGGERS = ("nncf", "torch", "torchao", "onnx", "onnxruntime")
TAIL_LINES = 40
_HIDDEN_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_WARNINGS_MODULES = {"warnings", "_py_warnings", __name__}


class Output:
    """Where edgesr's own lines go inside :func:`quiet_third_party`: the real streams."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout, self.stderr = stdout, stderr

    def log(self, text: str) -> None:
        """One of edgesr's progress lines, on the real stdout."""
        print(text, file=self.stdout, flush=True)


class _Sink(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr. While the block runs it swallows text (into
    ``into`` when given); afterwards it forwards to the stream it replaced, so a handler that
    a library bound to it at import time (NNCF binds one to sys.stdout) keeps working."""

    def __init__(self, replaced: TextIO, into: int | None) -> None:
        self.replaced, self.into, self.active = replaced, into, True
        self.encoding_ = getattr(replaced, "encoding", None) or "utf-8"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.encoding_

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not self.active:
            return self.replaced.write(text)
        if self.into is not None:
            # Straight to the descriptor that fd 2 shares, so the order of lines is kept.
            os.write(self.into, text.encode(self.encoding_, "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        if not self.active:
            self.replaced.flush()


def _flush(*streams: object) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[attr-defined]


def _on_fd2(stream: object) -> bool:
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _caller_module(frame: FrameType | None) -> str:
    """The module that called warnings.warn (the real origin, whatever stacklevel says)."""
    while frame is not None and frame.f_globals.get("__name__") in _WARNINGS_MODULES:
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


def _is_edgesr(module: str) -> bool:
    return module == "edgesr" or module.startswith("edgesr.")


@contextlib.contextmanager
def quiet_third_party(verbose: bool = False) -> Iterator[Output]:
    """Mute third-party output for the block; yields an :class:`Output` whose ``log`` (and
    ``stdout``/``stderr``) reach the user. ``verbose=True`` mutes nothing.

    Inside the block: the NOISY_LOGGERS are at ERROR; warnings that edgesr did not raise are
    dropped (edgesr's own still print); sys.stdout is a sink; sys.stderr and file descriptor 2
    go to a temporary file. All of it is restored on the way out, exceptions included. If the
    block fails with something other than an EdgesrError (which says what is wrong itself),
    the last TAIL_LINES lines of captured stderr are written to the real stderr first.
    """
    if verbose:
        yield Output(sys.stdout, sys.stderr)
        return
    real_out, real_err = sys.stdout, sys.stderr
    # A nested block: its lines go where the outer block's do.
    if isinstance(real_out, _Sink):
        real_out = real_out.replaced
    if isinstance(real_err, _Sink):
        real_err = real_err.replaced
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    with tempfile.TemporaryFile() as captured:
        saved_fd: int | None = None
        err_writer: TextIO | None = None
        out_sink = _Sink(sys.stdout, None)
        err_sink = _Sink(sys.stderr, captured.fileno())
        failed: BaseException | None = None
        _flush(sys.stdout, sys.stderr, real_out, real_err)
        try:
            try:
                saved_fd = os.dup(2)
                os.dup2(captured.fileno(), 2)
            except OSError:  # no descriptor 2 to redirect (closed, or an embedding host's)
                if saved_fd is not None:
                    os.close(saved_fd)
                saved_fd = None
            if saved_fd is not None and _on_fd2(real_err):
                # The user's stderr now lives on the saved descriptor; a stream of its own on it.
                err_writer = os.fdopen(
                    os.dup(saved_fd),
                    "w",
                    encoding=getattr(real_err, "encoding", None) or "utf-8",
                    errors="backslashreplace",
                    buffering=1,
                )
            user_err = err_writer or real_err
            for name in NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            # edgesr's own warnings go on through the handler that was in place (the default
            # printer, or a caller's recorder such as pytest.warns), onto the real stderr.
            outer_show = warnings.showwarning
            with warnings.catch_warnings():
                warnings.simplefilter("default")

                def show(
                    message: Warning | str,
                    category: type[Warning],
                    filename: str,
                    lineno: int,
                    file: TextIO | None = None,
                    line: str | None = None,
                ) -> None:
                    raised_by = _caller_module(sys._getframe(1))
                    mine = _is_edgesr(getattr(category, "__module__", "")) or (
                        _is_edgesr(raised_by)
                        and category.__module__ == "builtins"
                        and not issubclass(category, _HIDDEN_CATEGORIES)
                    )
                    if mine:
                        outer_show(message, category, filename, lineno, user_err, line)
                        return
                    with contextlib.suppress(Exception):
                        err_sink.write(
                            warnings.formatwarning(message, category, filename, lineno, line)
                        )
                        err_sink.flush()

                warnings.showwarning = show
                sys.stdout, sys.stderr = out_sink, err_sink
                try:
                    yield Output(real_out, user_err)
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    sys.stdout, sys.stderr = out_sink.replaced, err_sink.replaced
        finally:
            out_sink.active = err_sink.active = False
            for name, level in levels.items():
                # A library imported in the block may have set its own level; that one stays.
                if logging.getLogger(name).level == logging.ERROR:
                    logging.getLogger(name).setLevel(level)
            _flush(sys.stdout, sys.stderr, err_writer)
            if saved_fd is not None:
                os.dup2(saved_fd, 2)
                os.close(saved_fd)
            if err_writer is not None:
                with contextlib.suppress(OSError):
                    err_writer.close()
            # Ctrl-C is no crash, and an EdgesrError already names the problem.
            if isinstance(failed, Exception) and not isinstance(failed, EdgesrError):
                _dump_tail(captured, real_err)


def _dump_tail(captured: IO[bytes], stream: TextIO) -> None:
    with contextlib.suppress(Exception):
        fd = captured.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", "backslashreplace")
        lines = collections.deque(text.splitlines(), maxlen=TAIL_LINES)
        if lines:
            stream.write(
                f"--- the last {len(lines)} lines of hidden third-party output "
                "(--verbose shows all) ---\n" + "\n".join(lines) + "\n---\n"
            )
            stream.flush()
