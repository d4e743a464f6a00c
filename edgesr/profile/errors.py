"""The device core's errors as edgesr's own.

:mod:`edgesr.profile.minimal` cannot import edgesr (it runs alone on devices), so it raises its
own ``ProfileError`` classes with edgesr's exit codes; code of the full profiler runs it inside
``edgesr_errors()`` to re-raise them as the matching :class:`~edgesr.errors.EdgesrError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from edgesr.errors import ConfigError, DataError, DependencyError, EdgesrError, ModelError

__all__ = ["edgesr_errors"]

_BY_CODE: dict[int, type[EdgesrError]] = {
    2: ConfigError,
    3: DataError,
    4: ModelError,
    6: DependencyError,
}


@contextlib.contextmanager
def edgesr_errors() -> Iterator[None]:
    """Re-raise the device core's errors (which cannot import edgesr) as edgesr's own."""
    from edgesr.profile.minimal import ProfileError

    try:
        yield
    except ProfileError as exc:
        raise _BY_CODE.get(exc.exit_code, EdgesrError)(str(exc)) from exc
