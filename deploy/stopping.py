"""Stopping at any moment: SIGINT/SIGTERM become an exception, and children die with their parent.

`StopSignals` turns the first SIGINT (Ctrl-C) or SIGTERM into `Interrupted` raised in the main thread,
wherever it is: starting processes, waiting for readiness, in the middle of an HTTP call of the demo
load, or watching the running system. Only inside `deferred()` (while a child process is being created
and recorded) it waits until the end of the block, so no child is started without being known.
Later signals are ignored: the stop that follows is bounded anyway (see `System.down`).

`die_with_parent()` is a `preexec_fn` for children on Linux: the kernel sends them SIGTERM when the
launcher ends, even when it is killed with SIGKILL (prctl PR_SET_PDEATHSIG), so no component is orphaned.
The kernel ties this to the *thread* that started the child: start children from the main thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt; `except Exception` lets it through
    """SIGINT or SIGTERM arrived: stop everything."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + self.signum


class StopSignals:
    """While entered, the first SIGINT or SIGTERM raises `Interrupted` in the main thread."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = 0
        self._raised = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        self._raise_if_due()

    def _raise_if_due(self) -> None:
        if self.signum is not None and not self._raised and not self._deferring:
            self._raised = True
            raise Interrupted(self.signum)

    def quiet(self) -> None:
        """From now on signals raise nothing (the stop has begun)."""
        self._raised = True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block a signal does not interrupt; `Interrupted` is raised at its end if one came."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        self._raise_if_due()


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` making the child receive `sig` when this process ends (None where not supported)."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: keep it tiny
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent ended before prctl took effect
            os._exit(1)

    return preexec
