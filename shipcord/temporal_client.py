"""Connecting to Temporal: the embedded dev server, a self-hosted cluster or Temporal Cloud."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig

from shipcord.payload_codec import data_converter
from shipcord.settings import Settings, SettingsError
from workflows.file_access import why_unreadable

__all__ = ["TemporalUnavailable", "connect_temporal", "temporal_runtime", "temporal_target"]

_log = logging.getLogger(__name__)
# Failures that another attempt will not fix.
_PERMANENT_MARKERS = ("Unauthenticated", "PermissionDenied")
# The core's errors are Rust debug dumps; the OS or resolver message inside is what matters.
_INNER_MESSAGE = re.compile(r'(?:message|error): "([^"]+)"')
_runtimes: dict[str | None, Runtime] = {}


class MetricsPortInUse(RuntimeError):
    """The Temporal SDK's metrics port is taken: the message says which and what to set."""


class TemporalUnavailable(RuntimeError):
    """Temporal could not be reached; the message says where and why, in one line."""


def temporal_runtime(metrics_bind: str | None) -> Runtime:
    """The process's Temporal SDK runtime, built once per metrics address.

    The SDK core's own logs (Rust) are forwarded to the `temporalio.core` Python logger,
    so they pass through shipcord's log pipeline (format, redaction). With `metrics_bind`
    set (`host:port`), the SDK serves its Prometheus metrics there; shipcord passes
    `Settings.sdk_metrics_bind` (SHIPCORD_METRICS_ADDRESS, SHIPCORD_METRICS_PORT + 1).
    Cached because a second runtime on the same port could not bind it, and a worker must
    share its client's runtime anyway.
    """
    runtime = _runtimes.get(metrics_bind)
    if runtime is None:
        metrics = (
            None
            if metrics_bind is None
            else PrometheusConfig(
                bind_address=metrics_bind,
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
            )
        )
        logging_config = LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
        )
        try:
            runtime = Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics))
        except ValueError as error:
            if "Address already in use" not in str(error):
                raise
            raise MetricsPortInUse(
                f"cannot serve the Temporal SDK's metrics on {metrics_bind}: the port is in "
                "use; it is SHIPCORD_METRICS_PORT + 1, so set SHIPCORD_METRICS_PORT to a port "
                "whose next one is free too"
            ) from None
        _runtimes[metrics_bind] = runtime
    return runtime


def temporal_target(settings: Settings) -> str:
    """The host:port shipcord talks to: TEMPORAL_ADDRESS, or the embedded server."""
    if settings.temporal_address is not None:
        return settings.temporal_address
    ip = settings.temporal_ip
    host = "127.0.0.1" if ip in ("0.0.0.0", "::") else f"[{ip}]" if ":" in ip else ip
    return f"{host}:{settings.temporal_port}"


def _read(path: Path, env_name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SettingsError(
            [f"{env_name}: cannot read {path}: {why_unreadable(path, error)}"]
        ) from None


def _tls_config(settings: Settings) -> bool | TLSConfig | None:
    """TLS for a remote server: client cert/key, server CA, or plain TLS for an API key."""
    cert, key, ca = (
        settings.temporal_tls_cert_path,
        settings.temporal_tls_key_path,
        settings.temporal_tls_ca_path,
    )
    if cert is not None or ca is not None:
        return TLSConfig(
            client_cert=_read(cert, "TEMPORAL_TLS_CERT_PATH") if cert else None,
            client_private_key=_read(key, "TEMPORAL_TLS_KEY_PATH") if key else None,
            server_root_ca_cert=_read(ca, "TEMPORAL_TLS_CA_PATH") if ca else None,
        )
    if settings.temporal_api_key is not None:
        return True  # Temporal Cloud: API keys only travel over TLS.
    return None


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    text = text.removeprefix("Failed client connect: ")
    if any(marker in text for marker in _PERMANENT_MARKERS):
        return " ".join(text.split())[:300]
    inner = _INNER_MESSAGE.findall(text)
    if inner:
        return inner[-1]
    return " ".join(text.split())[:300]


async def connect_temporal(
    settings: Settings,
    address: str | None = None,
    *,
    retry_for: float = 30.0,
    runtime: Runtime | None = None,
) -> Client:
    """Connect a Temporal client with shipcord's data converter, namespace and credentials.

    `address` overrides the target (the embedded server passes its own). Transient
    failures are retried with backoff until `retry_for` seconds have passed; then, or at
    once for authentication errors, raises `TemporalUnavailable`.
    """
    target = address or temporal_target(settings)
    # TLS and API keys belong to a configured remote server, never to the local dev server.
    remote = not settings.embedded_temporal
    tls = _tls_config(settings) if remote else None
    api_key = (
        settings.temporal_api_key.get_secret_value()
        if remote and settings.temporal_api_key is not None
        else None
    )
    if runtime is None:
        runtime = temporal_runtime(settings.sdk_metrics_bind)
    converter = data_converter(settings.payload_key_bytes)

    deadline = time.monotonic() + retry_for
    delay = 0.2
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(
                Client.connect(
                    target,
                    namespace=settings.temporal_namespace,
                    api_key=api_key,
                    tls=tls if tls is not None else False,
                    data_converter=converter,
                    connect_timeout=timedelta(seconds=max(1.0, min(10.0, remaining))),
                    runtime=runtime,
                ),
                timeout=max(1.0, remaining),
            )
        except (RuntimeError, TimeoutError, OSError) as error:
            reason = _reason(error)
            if any(marker in reason for marker in _PERMANENT_MARKERS):
                raise TemporalUnavailable(f"cannot reach Temporal at {target}: {reason}") from None
            if time.monotonic() + delay >= deadline:
                raise TemporalUnavailable(
                    f"cannot reach Temporal at {target}: {reason} "
                    f"(gave up after {attempt} attempts in {retry_for:g}s)"
                ) from None
            _log.info("Temporal not reachable yet at %s (attempt %d): %s", target, attempt, reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
