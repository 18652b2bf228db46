"""The one exception type the command line turns into a one-line error."""

from __future__ import annotations

import contextlib
from typing import Iterator


class BenchError(Exception):
    """A problem the user can fix (bad name, bad path, corrupt file).

    ``python -m bench`` prints ``error: <message>`` and exits with status 2
    instead of showing a traceback.
    """


def unknown_name(kind: str, name: str, known) -> BenchError:
    """``unknown <kind> 'x'; did you mean 'y'?`` (or the known names when nothing is close)."""
    from explainers.registry import did_you_mean

    return BenchError(did_you_mean(kind, name, known))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn what explainers and metrics raise for input a user can fix (they raise standard exceptions and
    import nothing from bench/) into :class:`BenchError`: a bad setting or value (ValueError), an unknown
    name (explainers.registry.UnknownName), a plugin that does not import (ImportError) or a missing file
    (FileNotFoundError)."""
    from explainers.registry import UnknownName

    try:
        yield
    except (ValueError, UnknownName, ImportError, FileNotFoundError) as exc:
        raise BenchError(str(exc)) from None
