"""Fair turns for visitors: one request per visitor at a time, a bounded number in all, a polite refusal beyond.

Gradio's queue runs events first come, first served within a concurrency limit, so one visitor who fires four
runaway queries would hold every slot for the whole time limit while everyone else waits. The Space's query and
model events therefore skip Gradio's limit (`concurrency_limit=None`) and take a turn here instead: a visitor who
already has a request running is told to wait for it, and when `capacity` requests run at once the next one is
told the Space is busy. Nobody is queued behind anybody else's query.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sense_hub.errors import SenseHubError

__all__ = ["Busy", "VisitorGate"]


class Busy(SenseHubError, RuntimeError):
    """A request refused for now: the visitor already has one running, or the Space is at capacity."""


class VisitorGate:
    """At most one request per visitor and `capacity` requests in all.

    Args:
        capacity: requests that may run at once (across visitors).
        what: what a request is, for the messages ("query", "question").
        seconds: how long one request may take at most, for the messages (0: not said).
    """

    def __init__(self, capacity: int, *, what: str = "query", seconds: float = 0.0) -> None:
        if capacity < 1:
            raise ValueError(f"`capacity` must be at least 1, got {capacity}")
        self.capacity = capacity
        self.what = what
        self.seconds = seconds
        self._active: set[str] = set()
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        return len(self._active)

    @contextmanager
    def turn(self, visitor: str) -> Iterator[None]:
        """Hold the visitor's turn for the `with` block.

        Raises:
            Busy: the visitor already has a request running, or `capacity` requests are running.
        """
        limit = f" (it stops after at most {self.seconds:g} s)" if self.seconds else ""
        with self._lock:
            if visitor in self._active:
                raise Busy(f"Your previous {self.what} is still running{limit}; wait for it, then try again.")
            if len(self._active) >= self.capacity:
                raise Busy(
                    f"The Space is busy ({self.capacity} {self.what}s are running); try again in a few seconds."
                )
            self._active.add(visitor)
        try:
            yield
        finally:
            with self._lock:
                self._active.discard(visitor)
