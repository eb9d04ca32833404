"""Pydantic's validation errors as lines a person can act on: where, then what."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import ValidationError

_PREFIXES = ("Value error, ", "Assertion failed, ")


class Problem(NamedTuple):
    where: str  # dotted location; '' for the whole input
    message: str
    value: Any  # what was given


def validation_problems(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        message = str(item["msg"])
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        where = ".".join(str(part) for part in item["loc"])
        problems.append(Problem(where, message, item.get("input")))
    return problems
