"""Where releases run: local processes (the default) or Docker containers."""

from workflows.runtimes.base import (
    PermanentRuntimeError,
    ReleaseHandle,
    ReleaseSpec,
    Runtime,
    RuntimeError_,
    reachable_url,
)
from workflows.runtimes.docker import DockerRuntime
from workflows.runtimes.process import ProcessRuntime

__all__ = [
    "DockerRuntime",
    "PermanentRuntimeError",
    "ProcessRuntime",
    "ReleaseHandle",
    "ReleaseSpec",
    "Runtime",
    "RuntimeError_",
    "reachable_url",
]
