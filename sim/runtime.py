"""The virtual-time event loop: a heap of timed events and nothing else.

Events are ordered by ``(time_us, sequence)``; the sequence number is the order in which they
were scheduled, so two events at the same instant always run in the same order and a run is a
pure function of its inputs. Time is integer microseconds of virtual time (the network's
serialization delays and the virtual CPU cost of a signature check are fractions of a
millisecond); nodes see milliseconds. There is no wall clock here.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

US_PER_MS = 1000
MAX_PENDING_EVENTS = 5_000_000  # a runaway schedule is a bug; stop rather than eat the memory


def ms_to_us(ms: int) -> int:
    return ms * US_PER_MS


def us_to_ms(us: int) -> int:
    return us // US_PER_MS


# A heap entry is [time_us, sequence, action]: lists compare element-wise in C, and the
# unique sequence number means actions are never compared. Cancelling sets the action to None.
_TIME, _SEQUENCE, _ACTION = 0, 1, 2


class EventHandle:
    """Returned by ``schedule``; ``cancel()`` makes the event a no-op."""

    __slots__ = ("_entry",)

    def __init__(self, entry: list) -> None:
        self._entry = entry

    def cancel(self) -> None:
        self._entry[_ACTION] = None

    @property
    def time_us(self) -> int:
        return self._entry[_TIME]


class EventLoop:
    """Runs callbacks in virtual-time order."""

    def __init__(self) -> None:
        self._heap: list[list] = []
        self._sequence = 0
        self.now_us = 0
        self.events_run = 0

    @property
    def now_ms(self) -> int:
        return us_to_ms(self.now_us)

    def schedule_at(self, time_us: int, action: Callable[[], Any]) -> EventHandle:
        assert time_us >= self.now_us, f"event scheduled in the past: {time_us} < {self.now_us}"
        assert len(self._heap) < MAX_PENDING_EVENTS, "event heap overflow"
        entry = [time_us, self._sequence, action]
        self._sequence += 1
        heapq.heappush(self._heap, entry)
        return EventHandle(entry)

    def schedule_in(self, delay_us: int, action: Callable[[], Any]) -> EventHandle:
        assert delay_us >= 0
        return self.schedule_at(self.now_us + delay_us, action)

    def pending(self) -> int:
        return len(self._heap)

    def next_time_us(self) -> int | None:
        while self._heap and self._heap[0][_ACTION] is None:
            heapq.heappop(self._heap)
        return self._heap[0][_TIME] if self._heap else None

    def step(self) -> bool:
        """Run the next event; False when none is left."""
        while self._heap:
            time_us, _, action = heapq.heappop(self._heap)
            if action is None:
                continue
            self.now_us = time_us
            self.events_run += 1
            action()
            return True
        return False

    def run_until(self, end_us: int, stop: Callable[[], bool] | None = None) -> None:
        """Run every event due at or before ``end_us``, then set the clock to ``end_us``.

        ``stop`` is consulted after each event; when it returns True the loop halts early
        (a checker found a violation) and the clock stays at that event.
        """
        while True:
            next_time = self.next_time_us()
            if next_time is None or next_time > end_us:
                break
            self.step()
            if stop is not None and stop():
                return
        self.now_us = max(self.now_us, end_us)
