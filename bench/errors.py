"""The one exception type the command line turns into a one-line error."""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix (bad name, bad path, corrupt file).

    ``python -m bench`` prints ``error: <message>`` and exits with status 2
    instead of showing a traceback.
    """


def unknown_name(kind: str, name: str, known) -> BenchError:
    """``unknown <kind> 'x'; did you mean 'y'?`` (or the known names when nothing is close)."""
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return BenchError(f"unknown {kind} {name!r}; {hint}")
