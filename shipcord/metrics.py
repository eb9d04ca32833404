"""shipcord's Prometheus metrics, on a private registry served by `start_metrics_server`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

__all__ = [
    "DEPLOYMENT_OUTCOMES",
    "REGISTRY",
    "MetricsServer",
    "PrometheusMeter",
    "count_discord_rate_limits",
    "deployment_duration_seconds",
    "deployments_ended_total",
    "deployments_started_total",
    "discord_rate_limited_total",
    "embedded_temporal_restarts_total",
    "open_deployments",
    "progress_edits_total",
    "render_metrics",
    "start_metrics_server",
]

# Terminal workflow states (see the `status` query contract in DESIGN.md).
DEPLOYMENT_OUTCOMES = ("succeeded", "failed", "cancelled")

REGISTRY = CollectorRegistry(auto_describe=True)

deployments_started_total = Counter(
    "deployments_started",
    "Deployments started from Discord (one per botDeploymentWorkflow).",
    namespace="shipcord",
    registry=REGISTRY,
)
deployments_ended_total = Counter(
    "deployments_ended",
    "Deployments that reached a terminal state, by outcome.",
    ["outcome"],
    namespace="shipcord",
    registry=REGISTRY,
)
deployment_duration_seconds = Histogram(
    "deployment_duration_seconds",
    "Wall time from workflow start to its terminal state.",
    namespace="shipcord",
    # Deployments take seconds to tens of minutes (health checks retry for a while).
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
    registry=REGISTRY,
)
progress_edits_total = Counter(
    "progress_edits",
    "Edits of Discord progress messages (only sent when the rendered text changed).",
    namespace="shipcord",
    registry=REGISTRY,
)
discord_rate_limited_total = Counter(
    "discord_rate_limited",
    "Discord API responses with HTTP 429 (rate limited).",
    namespace="shipcord",
    registry=REGISTRY,
)
embedded_temporal_restarts_total = Counter(
    "embedded_temporal_restarts",
    "Times the embedded Temporal dev server died and was started again.",
    namespace="shipcord",
    registry=REGISTRY,
)
open_deployments = Gauge(
    "open_deployments",
    "Deployments not yet in a terminal state. Set from the progress board's count "
    "rather than inc/dec, so it stays right across restarts.",
    namespace="shipcord",
    registry=REGISTRY,
)

# Export every outcome at 0 from the start, so rate() and alerts see the series early.
for _outcome in DEPLOYMENT_OUTCOMES:
    deployments_ended_total.labels(outcome=_outcome)


class PrometheusMeter:
    """The front end's counts (`bot.frontend_meter.FrontEndMeter`) as these Prometheus metrics."""

    def deployment_started(self) -> None:
        deployments_started_total.inc()

    def deployment_ended(self, outcome: str, seconds: float | None) -> None:
        deployments_ended_total.labels(outcome=outcome).inc()
        if seconds is not None:
            deployment_duration_seconds.observe(max(0.0, seconds))

    def progress_edited(self) -> None:
        progress_edits_total.inc()

    def open_deployments(self, count: int) -> None:
        open_deployments.set(count)


def render_metrics() -> bytes:
    """The Prometheus text exposition of shipcord's metrics."""
    return generate_latest(REGISTRY)


@dataclass
class MetricsServer:
    """A running `/metrics` HTTP endpoint (in a daemon thread)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve shipcord's metrics at `http://{addr}:{port}/metrics` (port 0 picks a free one).

    Loopback by default (SHIPCORD_METRICS_ADDRESS): a Prometheus in another container needs
    0.0.0.0 or the container's address.
    """
    server, thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return MetricsServer(server=server, thread=thread)


class _RateLimitCounter(logging.Filter):
    """Counts discord.py's 429s: it retries them itself and only says so in its log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("We are being rate limited"):
            discord_rate_limited_total.inc()
        return True


_rate_limit_counter = _RateLimitCounter()


def count_discord_rate_limits() -> None:
    """Start counting the 429s that discord.py receives (idempotent)."""
    logger = logging.getLogger("discord.http")
    if _rate_limit_counter not in logger.filters:
        logger.addFilter(_rate_limit_counter)
