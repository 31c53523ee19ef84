"""Per-user limits: a sliding minute of requests with one polite warning per burst, and refusals
to strangers said at most once a minute."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import Enum

WINDOW_SECONDS = 60.0


class Verdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # over the limit: say so once
    IGNORE = "ignore"  # still over the limit after the warning: stay quiet


class RequestLimiter:
    """At most `per_minute` requests (questions, button presses, inline queries) per user in any
    60 seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._asked: dict[int, deque[float]] = {}
        self._warned: set[int] = set()

    def check(self, user_id: int) -> Verdict:
        now = self.clock()
        asked = self._asked.setdefault(user_id, deque())
        while asked and now - asked[0] >= WINDOW_SECONDS:
            asked.popleft()
        if len(asked) < self.per_minute:
            asked.append(now)
            self._warned.discard(user_id)
            return Verdict.ALLOW
        if user_id in self._warned:
            return Verdict.IGNORE
        self._warned.add(user_id)
        return Verdict.WARN

    def seconds_until_free(self, user_id: int) -> int:
        asked = self._asked.get(user_id)
        if not asked:
            return 0
        return max(1, round(WINDOW_SECONDS - (self.clock() - asked[0])))


class OncePerMinute:
    """Whether to tell someone something again: at most once in any 60 seconds.

    A stranger who keeps writing would otherwise cost a refusal, one Bot API request, each time,
    out of the 30 a second the bot may make for everyone.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._told: dict[int, float] = {}

    def due(self, key: int) -> bool:
        now = self.clock()
        last = self._told.get(key)
        if last is not None and now - last < WINDOW_SECONDS:
            return False
        self._told[key] = now
        return True
