"""Writing results without losing earlier ones (the ``--force`` guard, atomic writes), and
reading edgesr's JSON results back with errors that name the file.

Every command that writes a file or a run directory goes through these, so "already exists;
pass --force" means the same everywhere and a crash never leaves half a file that looks whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, DataError, OutputExistsError


def refuse_existing(path: str | Path, *, force: bool, hint: str = "") -> None:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``force`` is off.

    ``hint`` adds an alternative to --force (e.g. "or choose another --out").
    """
    if not force and Path(path).exists():
        extra = f" {hint}" if hint else ""
        raise OutputExistsError(f"{path} already exists; pass --force to replace it{extra}.")


def prepare_out_dir(out: Path, *, force: bool, keep: Iterable[str] = ()) -> None:
    """Make ``out`` an empty run directory (entries named in ``keep`` may stay).

    A directory holding anything else is refused unless ``force``, which removes it (but not
    the ``keep`` entries).
    """
    keep = set(keep)
    if out.is_dir():
        stale = [p for p in out.iterdir() if p.name not in keep]
        if stale and not force:
            raise OutputExistsError(
                f"{out} already holds results; pass --force to replace them or choose another --out."
            )
        for p in stale:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"  # a read-only folder fails here, not after minutes of work
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write to the output folder {out} ({exc}); choose a writable --out."
        ) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: str | Path, *, what: str) -> Any:
    """The JSON document at ``path``; DataError naming ``what`` ("results file", ...) if the
    file is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{what} {path} is not readable JSON ({exc}).") from exc
