"""A dependency-free progress line: step, loss, validation PSNR, speed and ETA.

On a terminal it redraws one line; in a log (CI, nohup) it prints a line every few seconds.
"""

from __future__ import annotations

import time
from typing import TextIO


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(
        self, *, total: int, start: int, stream: TextIO, enabled: bool = True, every_s: float = 10.0
    ) -> None:
        self.total, self.start, self.stream, self.enabled = total, start, stream, enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every_s = 0.2 if self.tty else every_s
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, step: int, *, loss: float, psnr: float | None = None) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < self.every_s and step != self.total:
            return
        self.last = now
        done = step - self.start
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        psnr_text = f" val {psnr:.2f} dB" if psnr is not None else ""
        line = f"[{bar}] {step}/{self.total} loss {loss:.5f}{psnr_text} {rate:.1f} it/s ETA {_fmt_time(eta)}"
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
