"""Hosts: the machines releases run on, and the task queue that reaches each one."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

DEFAULT_HOST = "local"
HOST_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


def validate_host_name(name: str) -> str:
    if not HOST_NAME.fullmatch(name):
        raise ValueError(
            "a host name is 1-63 lowercase letters, digits, '.' and '-', starting with a "
            "letter or digit"
        )
    return name


HostName = Annotated[str, Field(max_length=63), AfterValidator(validate_host_name)]


def host_task_queue(task_queue: str, host: str) -> str:
    """The queue that only `host`'s workers poll."""
    return f"{task_queue}@host-{host}"


def host_gone_message(host: str) -> str:
    """What a deployment says when its host's queue found no worker in time."""
    return f"host {host} has no running worker"


# A step tried as a local activity on a worker of another host than its release's: it did
# nothing, and the workflow schedules it on the release's host queue instead.
ON_ANOTHER_HOST = "OnAnotherHost"
