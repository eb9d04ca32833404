"""Fixed-window rate-limit buckets and the X-RateLimit-* headers Discord sends for them.

A window opens on the first request after the previous one expired and allows ``limit``
requests until ``window`` seconds later, which is exactly what discord.py's client-side
``Ratelimit`` models. Reset-After is rounded *up* to the millisecond so a client that
sleeps for it never arrives early.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class Window:
    started: float
    count: int = 0


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float

    def headers(self, bucket_hash: str) -> dict[str, str]:
        reset_after = math.ceil(self.reset_after * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket_hash,
        }


@dataclass
class FixedWindowLimiter:
    limit: int
    window: float
    bucket_hash: str
    _windows: dict[Hashable, Window] = field(default_factory=dict)

    def hit(self, key: Hashable) -> Decision:
        now = time.monotonic()
        current = self._windows.get(key)
        if current is None or now >= current.started + self.window:
            current = self._windows[key] = Window(started=now)
        reset_after = max(0.0, current.started + self.window - now)
        if current.count >= self.limit:
            return Decision(False, self.limit, 0, reset_after)
        current.count += 1
        return Decision(True, self.limit, self.limit - current.count, reset_after)
