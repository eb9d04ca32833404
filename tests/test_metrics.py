"""Metrics: the /metrics endpoint serves shipcord's metrics over real HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from shipcord import metrics


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    running = metrics.start_metrics_server(0, addr="127.0.0.1")  # 0: a free port
    yield running
    running.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def test_endpoint_serves_shipcord_metrics(server: metrics.MetricsServer) -> None:
    started = sample("shipcord_deployments_started_total")
    failed = sample("shipcord_deployments_ended_total", outcome="failed")

    metrics.deployments_started_total.inc()
    metrics.deployments_ended_total.labels(outcome="failed").inc()
    metrics.deployment_duration_seconds.observe(42.0)
    metrics.progress_edits_total.inc(3)
    metrics.discord_rate_limited_total.inc()
    metrics.open_deployments.set(2)

    body = scrape(server.port)
    assert f"shipcord_deployments_started_total {started + 1}" in body
    assert f'shipcord_deployments_ended_total{{outcome="failed"}} {failed + 1}' in body
    for outcome in metrics.DEPLOYMENT_OUTCOMES:  # exported from the start, even at zero
        assert f'shipcord_deployments_ended_total{{outcome="{outcome}"}}' in body
    assert 'shipcord_deployment_duration_seconds_bucket{le="60.0"}' in body
    assert "shipcord_progress_edits_total" in body
    assert "shipcord_discord_rate_limited_total" in body
    assert "shipcord_open_deployments 2.0" in body
    # A private registry: none of prometheus_client's default process collectors.
    assert "process_cpu_seconds_total" not in body
    assert body == metrics.render_metrics().decode()


def test_stopped_server_releases_its_port() -> None:
    running = metrics.start_metrics_server(0, addr="127.0.0.1")
    port = running.port
    running.stop()
    again = metrics.start_metrics_server(port, addr="127.0.0.1")
    try:
        assert again.port == port
        assert "shipcord_open_deployments" in scrape(port)
    finally:
        again.stop()


def test_discord_429_warnings_are_counted() -> None:
    import logging

    from shipcord.metrics import count_discord_rate_limits, discord_rate_limited_total

    count_discord_rate_limits()
    count_discord_rate_limits()  # idempotent: still counted once per 429
    before = discord_rate_limited_total._value.get()
    logging.getLogger("discord.http").warning(
        "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.",
        "PATCH",
        "/channels/1/messages/2",
        0.5,
    )
    logging.getLogger("discord.http").warning("something else")
    assert discord_rate_limited_total._value.get() == before + 1
