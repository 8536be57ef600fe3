"""Detect a run that has stopped making progress, so the command can restart it from a checkpoint.

One job: a daemon thread that is fed a heartbeat after every step (and evaluation chunk) and calls
``on_stall`` once when none has come for ``max(timeout, factor × longest interval seen)`` seconds
(``first_timeout`` before the first beat, which has to wait for compilation and burn-in).

Why: on jax 0.10.2 the XLA CPU runtime occasionally loses a wake-up and a jitted step never
finishes, with every worker thread idle (seen with 33-electron gas steps, a few steps into a run,
with ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` already set). The hung computation
cannot be cancelled in-process, but a run resumes exactly from its checkpoints, so the ``qvfe``
command re-executes itself on the run directory (``qvfe.cli``): the result is the same as that of
an uninterrupted run and only the steps since the last checkpoint are repeated.

One compiled call can legitimately outlast the limit: hydrogen's proton pre-fit is a single
``lax.scan`` of hundreds of steps inside the run's preparation (over 20 minutes at 32 protons on
2 cores). Such loops call :func:`keepalive` from inside the computation (``jax.debug.callback``,
see :func:`keepalive_every`): a computation that calls back is not stalled, and every active
watchdog restarts its clock without counting the interval as a step.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["StallWatchdog", "keepalive", "keepalive_every"]

_ACTIVE: set["StallWatchdog"] = set()


def keepalive() -> None:
    """Tell every active watchdog that the process is making progress (host side)."""
    for dog in list(_ACTIVE):
        dog.alive()


def keepalive_every(i, every: int) -> None:
    """Inside a jitted loop: call :func:`keepalive` from the device when step ``i`` is a multiple
    of ``every`` (a traced integer; a no-op on the host otherwise)."""
    import jax

    jax.lax.cond(i % every == 0, lambda: jax.debug.callback(keepalive), lambda: None)


class StallWatchdog:
    """``with StallWatchdog(timeout, on_stall) as dog: ... dog.beat() ...``

    Args:
        timeout: seconds without a heartbeat that count as a stall at least.
        on_stall: called once, from the watchdog thread, with the seconds since the last beat.
        first_timeout: the limit before the first beat (compilation and burn-in come first);
            default 4 × timeout.
        factor: a stall is also only declared after ``factor`` times the longest interval between
            two beats seen so far (slow steps of a large system are not stalls).
        poll: seconds between checks.
    """

    def __init__(self, timeout: float, on_stall: Callable[[float], None], *, factor: float = 20.0,
                 first_timeout: float | None = None, poll: float = 1.0) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.timeout, self.on_stall, self.factor, self.poll = timeout, on_stall, factor, poll
        self.first_timeout = 4.0 * timeout if first_timeout is None else first_timeout
        self._beats = 0
        self._last = time.monotonic()
        self._longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="qvfe-watchdog", daemon=True)
        self.stalled = False
        self.keepalives = 0

    def alive(self) -> None:
        """Progress inside a long computation: restart the clock, not a step interval."""
        self.keepalives += 1
        self._last = time.monotonic()

    def beat(self) -> None:
        now = time.monotonic()
        if self._beats:  # the first interval holds compilation: not a step time
            self._longest = max(self._longest, now - self._last)
        self._beats += 1
        self._last = now

    def limit(self) -> float:
        if not self._beats:
            return self.first_timeout
        return max(self.timeout, self.factor * self._longest)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            idle = time.monotonic() - self._last
            if idle > self.limit():
                self.stalled = True
                self.on_stall(idle)
                return

    def __enter__(self) -> "StallWatchdog":
        self._last = time.monotonic()
        _ACTIVE.add(self)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.discard(self)
        self._stop.set()
        self._thread.join()
