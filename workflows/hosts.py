"""Hosts: the machines releases run on, and the task queue that reaches each one.

Every worker polls the installation's shared task queue (workflows and the activities that
may run anywhere) and its own host's queue, `{task_queue}@host-{name}` (Temporal's
worker-specific task queue pattern). An activity that touches a release is scheduled on
the queue of the host the release lives on, so only that host's workers run it, against
that host's own SQLite file and processes. The name of a host is stable by design (not the
machine's hostname, which a recreated container changes): releases are found by it.
"""

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
