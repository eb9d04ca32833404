"""Ports for the processes a test starts (shipcord binds SHIPCORD_METRICS_PORT and the
port after it, for the Temporal SDK's exporter: both must be free)."""

from __future__ import annotations

import socket


def free_port(consecutive: int = 1) -> int:
    """A port (and the ones after it) that nothing listens on right now."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + consecutive > 65535:
            continue
        try:
            for offset in range(1, consecutive):
                with socket.socket() as neighbour:
                    neighbour.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port


# A health URL that never answers (nothing may listen on port 1): a target that must fail
# its health check then fails only because its process ended, however slow the machine is,
# instead of passing when the process outlives `healthy_after` under load.
NEVER_HEALTHY = 'health_url = "http://127.0.0.1:1/never"\nhealth_timeout = 200\n'
