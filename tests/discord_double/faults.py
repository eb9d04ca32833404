"""Injected REST faults: a status/body (or just a delay) for matching requests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BODIES: dict[int, dict[str, Any]] = {
    400: {"message": "400: Bad Request", "code": 0},
    401: {"message": "401: Unauthorized", "code": 0},
    403: {"message": "Missing Permissions", "code": 50013},
    404: {"message": "404: Not Found", "code": 0},
    429: {"message": "You are being rate limited.", "retry_after": 0.1, "global": False},
    500: {"message": "500: Internal Server Error", "code": 0},
    502: {"message": "502: Bad Gateway", "code": 0},
    503: {"message": "503: Service Unavailable", "code": 0},
    504: {"message": "504: Gateway Timeout", "code": 0},
}


@dataclass
class FaultRule:
    method: str
    """HTTP method, or "*" for any."""
    path_regex: str
    """``re.search``-ed against the path below the API root, e.g. ``/channels/1/messages``."""
    status: int | None = 500
    """None: only apply ``delay`` and then serve the request normally."""
    times: int | None = 1
    """How many requests to hit; None means until removed."""
    delay: float = 0.0
    body: Any = None
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self._pattern = re.compile(self.path_regex)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.exhausted:
            return False
        if self.method not in ("*", method.upper()):
            return False
        return self._pattern.search(path) is not None

    def response_body(self) -> Any:
        if self.body is not None:
            return self.body
        assert self.status is not None
        return DEFAULT_BODIES.get(self.status, {"message": f"{self.status}", "code": 0})


class FaultInjector:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this request, with its hit counted."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.hits += 1
                return rule
        return None
