"""Logging and progress: one logger per package, a bar on a terminal, plain lines elsewhere.

The library logs through the standard :mod:`logging` module (``bench.*``, ``explainers.*``) and
configures nothing: a notebook's ``bench.run(...)`` prints nothing unless the user sets up logging
or asks for progress. The command line calls :func:`configure_logging` (``-q`` warnings only,
default info, ``-v`` debug).

Progress comes in two kinds:

* the run as a whole (:class:`RunProgress`): every step (data, black box, features, each fit and
  each scoring) is logged when it starts and with its duration when it ends, with "k of N" and an
  estimate of the time left; a run ends with a summary of the time per step;
* each training loop (:func:`track`, used by :func:`explainers.training.minibatches`): a tqdm
  bar, only when bars are on (:func:`bars`) and stderr is a terminal. Where it is not (CI logs,
  files) the explainers' own periodic lines (every 10 s) say how far a fit is, and no bar redraws.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from typing import Callable, Iterable, Iterator

logger = logging.getLogger("bench")

_BARS = contextvars.ContextVar("genexbench_progress_bars", default=False)
_TASK = contextvars.ContextVar("genexbench_progress_task", default="")


def log_to(name: str) -> Callable[[str], None]:
    """The ``log`` callable handed to training code: INFO messages of logger ``name``."""
    return logging.getLogger(name).info


def stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is written (not when the handler was made), so
    a replaced stderr (a notebook's, pytest's capture) gets the lines and a closed one is never written to."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


class _TqdmHandler(_StderrHandler):
    """Writes records through :func:`tqdm.tqdm.write`, so lines print above an active bar, not through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never break a run
            self.handleError(record)


_HANDLER_FLAG = "_genexbench_handler"


def configure_logging(verbosity: int = 0) -> None:
    """Log ``bench``, ``explainers`` and ``metrics`` to stderr with a timestamp: ``verbosity`` -1 (``-q``)
    warnings only, 0 info, 1 (``-v``) debug. Replaces a handler this function installed before."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG if verbosity > 0 else logging.WARNING)
    handler = _TqdmHandler() if stderr_is_terminal() else _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    setattr(handler, _HANDLER_FLAG, True)
    for name in ("bench", "explainers", "metrics"):
        log = logging.getLogger(name)
        for old in [h for h in log.handlers if getattr(h, _HANDLER_FLAG, False)]:
            log.removeHandler(old)
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False


def reset_logging() -> None:
    """Undo :func:`configure_logging` (for tests, and for a notebook that wants the defaults back)."""
    for name in ("bench", "explainers", "metrics"):
        log = logging.getLogger(name)
        for old in [h for h in log.handlers if getattr(h, _HANDLER_FLAG, False)]:
            log.removeHandler(old)
        log.setLevel(logging.NOTSET)
        log.propagate = True


@contextlib.contextmanager
def bars(enabled: bool) -> Iterator[None]:
    """Show tqdm bars inside the block when ``enabled`` and stderr is a terminal."""
    from explainers.training import training_progress  # the explainers' training loops get the bar too

    token = _BARS.set(bool(enabled) and stderr_is_terminal())
    try:
        with training_progress(track):
            yield
    finally:
        _BARS.reset(token)


def track(items: Iterable, *, total: int | None = None, unit: str = "step") -> Iterable:
    """``items`` unchanged, with a bar labelled by the current run step when bars are on."""
    if not _BARS.get():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=_TASK.get() or "training", unit=unit, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class RunProgress:
    """The steps of a run (or of several seeds): k of N done, elapsed, time left, and a summary.

    The estimate of the time left is the mean time of the steps done so far times the steps left:
    crude (a GAN fit takes longer than a Captum scoring) and labelled as such.
    """

    def __init__(self, total: int, *, bar: bool = False) -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()
        self.durations: list[tuple[str, float]] = []
        self._bar = None
        if bar and _BARS.get():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="run", unit="step", file=sys.stderr, dynamic_ncols=True)

    def add(self, n: int) -> None:
        """Steps found to be needed after the run started (e.g. a further seed)."""
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time one step, log its start and end, label the training bars inside it."""
        logger.info(f"[run] {label} ...")
        token = _TASK.set(label)
        start = time.perf_counter()
        try:
            yield
        finally:
            _TASK.reset(token)
            self.record(label, time.perf_counter() - start)

    def record(self, label: str, seconds: float) -> None:
        """Count a step that took ``seconds`` as done."""
        self.durations.append((label, seconds))
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = max(self.total - self.done, 0) * elapsed / self.done
        logger.info(f"[run] {label}: {seconds:.1f}s  ({self.done} of {self.total} steps done, elapsed "
                    f"{_clock(elapsed)}, roughly {_clock(left)} left)")
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def summary(self) -> str:
        """Time per step, longest first, and the total."""
        width = max((len(label) for label, _ in self.durations), default=4)
        lines = [f"  {label:<{width}}  {seconds:8.1f}s" for label, seconds in
                 sorted(self.durations, key=lambda item: -item[1])]
        total = time.perf_counter() - self.started
        return "\n".join(["[run] time per step:", *lines, f"  {'total':<{width}}  {total:8.1f}s"])
