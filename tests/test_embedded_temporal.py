"""The embedded Temporal dev server and the client: real `temporal server start-dev` processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, ListNamespacesRequest
from temporalio.contrib.pydantic import pydantic_data_converter

from shipcord.embedded_temporal import EmbeddedTemporal, EmbeddedTemporalError, find_temporal_binary
from shipcord.settings import load_settings
from shipcord.temporal_client import TemporalUnavailable, connect_temporal
from tests.ports import free_port

NAMESPACE = "shipcord-test"
REPO_ROOT = Path(__file__).resolve().parent.parent


def server_processes(db_path: Path) -> list[psutil.Process]:
    """Live `temporal server start-dev` processes using this database file."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        command_line = process.info["cmdline"] or []
        if (
            "start-dev" in command_line
            and str(db_path) in command_line
            and process.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(process)
    return found


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode(errors="replace")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "data"
    yield directory
    # Whatever a failed test left behind: never leak servers past the test.
    for process in server_processes(directory.resolve() / "temporal.db"):
        process.kill()


def make_server(data_dir: Path, port: int, ui_port: int) -> EmbeddedTemporal:
    return EmbeddedTemporal(
        data_dir, port=port, ui_port=ui_port, namespace=NAMESPACE, startup_timeout=60
    )


def test_the_temporal_cli_is_found() -> None:
    binary = find_temporal_binary()
    assert binary.is_file() and os.access(binary, os.X_OK)


async def test_start_connect_reuse_and_stop(data_dir: Path) -> None:
    port, ui_port, metrics_port = free_port(), free_port(), free_port(consecutive=2)
    server = make_server(data_dir, port, ui_port)
    await server.start()
    try:
        assert server.address == f"127.0.0.1:{port}"
        pid = server.pid
        assert pid is not None and server.running and not server.adopted
        # Own session: Ctrl-C or a crash of shipcord does not take the server down.
        assert os.getsid(pid) != os.getsid(0)
        record = json.loads((data_dir / "temporal-server.pid").read_text())
        assert record["pid"] == pid and record["port"] == port
        assert (data_dir / "temporal.db").exists()
        assert (data_dir / "temporal-server.log").exists()
        command_line = psutil.Process(pid).cmdline()
        for pragma in ("journal_mode=wal", "synchronous=normal"):
            assert command_line[command_line.index(pragma) - 1] == "--sqlite-pragma"

        settings = load_settings(
            _env_file=None,
            data_dir=data_dir,
            temporal_port=port,
            temporal_ui_port=ui_port,
            temporal_namespace=NAMESPACE,
            metrics_port=metrics_port,
        )
        client = await connect_temporal(settings, server.address)
        assert client.namespace == NAMESPACE
        assert client.data_converter is pydantic_data_converter
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=NAMESPACE)
        )
        assert described.namespace_info.name == NAMESPACE
        listed = await client.workflow_service.list_namespaces(ListNamespacesRequest())
        assert NAMESPACE in {item.namespace_info.name for item in listed.namespaces}

        # The SDK's Prometheus exporter listens on SHIPCORD_METRICS_PORT + 1.
        status, _ = await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics_port + 1}/metrics")
        assert status == 200
        status, _ = await asyncio.to_thread(fetch, server.ui_url)
        assert status == 200

        # A second instance on the same data dir adopts the running server.
        second = make_server(data_dir, port, ui_port)
        await second.start()
        assert second.pid == pid and second.adopted
        assert [process.pid for process in server_processes(server.db_path)] == [pid]

        await second.stop()
        assert not second.running
        # The adopter stopped the very same process; its parent sees it exit (and reaps it).
        deadline = time.monotonic() + 10
        while server.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not server.running
        assert server_processes(server.db_path) == []
        assert not (data_dir / "temporal-server.pid").exists()
    finally:
        await server.stop()
    assert server.pid is None


async def test_server_survives_a_crash_of_its_starter_and_is_adopted(data_dir: Path) -> None:
    port, ui_port = free_port(), free_port()
    starter = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from shipcord.embedded_temporal import EmbeddedTemporal

        async def main():
            server = EmbeddedTemporal({str(data_dir)!r}, port={port}, ui_port={ui_port},
                                      namespace={NAMESPACE!r})
            await server.start()
            print(server.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # crash without any clean-up

        asyncio.run(main())
        """
    )
    crashed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", starter],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr
    orphan_pid = int(crashed.stdout.strip())
    assert psutil.pid_exists(orphan_pid)

    async with make_server(data_dir, port, ui_port) as server:
        assert server.adopted and server.pid == orphan_pid
        client = await connect_temporal(
            load_settings(_env_file=None, temporal_port=port, temporal_ui_port=ui_port),
            server.address,
        )
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=NAMESPACE)
        )
    assert server_processes(server.db_path) == []


def record_this_process_as_server(data_dir: Path, port: int, ui_port: int) -> int:
    """A pid file naming a live pid with the right start time that is no Temporal server."""
    data_dir.mkdir(parents=True)
    me = psutil.Process()
    record = {
        "pid": me.pid,
        "create_time": me.create_time(),
        "db_filename": str(data_dir.resolve() / "temporal.db"),
        "ip": "127.0.0.1",
        "port": port,
        "ui_ip": "127.0.0.1",
        "ui_port": ui_port,
        "namespace": NAMESPACE,
    }
    (data_dir / "temporal-server.pid").write_text(json.dumps(record))
    return me.pid


async def test_stale_or_foreign_records_are_not_adopted(data_dir: Path) -> None:
    port, ui_port = free_port(), free_port()
    my_pid = record_this_process_as_server(data_dir, port, ui_port)
    server = make_server(data_dir, port, ui_port)
    await server.start()
    try:
        assert not server.adopted and server.pid != my_pid
        first_pid = server.pid

        # Same data dir, new ports: the old server is replaced, never run twice.
        new_ui_port = free_port()
        moved = make_server(data_dir, port, new_ui_port)
        await moved.start()
        try:
            assert moved.pid != first_pid and not moved.adopted
            assert not server.running  # replaced, not left running beside the new one
            assert [process.pid for process in server_processes(moved.db_path)] == [moved.pid]
        finally:
            await moved.stop()
    finally:
        await server.stop()


async def test_port_in_use_is_a_clear_error(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])

        server = make_server(data_dir, taken, free_port())
        with pytest.raises(EmbeddedTemporalError) as error:
            await server.start()
        assert str(error.value) == (
            f"port {taken} is in use by another program; set SHIPCORD_TEMPORAL_PORT"
        )

        ui_clash = make_server(data_dir, free_port(), taken)
        with pytest.raises(EmbeddedTemporalError, match="set SHIPCORD_TEMPORAL_UI_PORT"):
            await ui_clash.start()

    assert server.pid is None and ui_clash.pid is None
    assert not (data_dir / "temporal-server.pid").exists()
    assert server_processes(server.db_path) == []


async def test_unreachable_temporal_is_a_clear_error() -> None:
    port = free_port()
    settings = load_settings(_env_file=None, temporal_address=f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(TemporalUnavailable) as error:
        await connect_temporal(settings, retry_for=1.0)
    message = str(error.value)
    assert message.startswith(f"cannot reach Temporal at 127.0.0.1:{port}: ")
    assert "refused" in message.lower()
    assert "\n" not in message
    assert time.monotonic() - started < 15


# Supervision -------------------------------------------------------------------------------


async def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_killed_server_is_restarted_from_the_same_data_file(data_dir: Path) -> None:
    server = make_server(data_dir, free_port(), free_port())
    await server.start()
    restarts: list[int] = []
    supervisor = asyncio.create_task(server.supervise(on_restart=lambda: restarts.append(1)))
    try:
        client = await connect_temporal(
            load_settings(
                _env_file=None,
                temporal_port=server.port,
                temporal_ui_port=server.ui_port,
                temporal_namespace=NAMESPACE,
            ),
            server.address,
        )
        # A workflow nobody works on: it stays open, in the server's database.
        handle = await client.start_workflow(
            "botDeploymentWorkflow", {"botName": "echo"}, id="kept", task_queue="nobody"
        )
        first = server.pid
        assert first is not None
        psutil.Process(first).kill()

        # Counted once the new server answers, a moment after it runs.
        await wait_for(
            lambda: server.running and server.pid != first and bool(restarts),
            "the restarted server, counted",
        )
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        assert restarts == [1] and server.restarts == 1
        assert [process.pid for process in server_processes(server.db_path)] == [server.pid]
    finally:
        supervisor.cancel()
        await server.stop()
    assert server_processes(server.db_path) == []


async def test_supervision_gives_up_when_the_server_cannot_start_again(
    data_dir: Path, tmp_path: Path
) -> None:
    # The server's binary through a wrapper that the test breaks once the server runs.
    wrapper = tmp_path / "temporal"
    wrapper.write_text(f'#!/bin/sh\nexec "{find_temporal_binary()}" "$@"\n')
    wrapper.chmod(0o755)
    server = EmbeddedTemporal(
        data_dir, port=free_port(), ui_port=free_port(), namespace=NAMESPACE, binary=wrapper
    )
    await server.start()
    supervisor = asyncio.create_task(server.supervise())
    try:
        wrapper.write_text("#!/bin/sh\necho 'temporal: cannot start today' >&2\nexit 7\n")
        assert server.pid is not None
        psutil.Process(server.pid).kill()
        with pytest.raises(EmbeddedTemporalError) as error:
            await asyncio.wait_for(supervisor, 60)
        assert "exited during start-up (code 7)" in str(error.value)
        assert "cannot start today" in str(error.value)
    finally:
        supervisor.cancel()
        await server.stop()


def modes(directory: Path) -> dict[str, int]:
    """Permission bits of the folder ('.') and of each file in it."""
    found = {".": directory.stat().st_mode & 0o777}
    for path in directory.iterdir():
        if path.is_file():
            found[path.name] = path.stat().st_mode & 0o777
    return found


async def test_the_servers_files_are_private_and_its_ports_on_loopback(data_dir: Path) -> None:
    os.mkdir(data_dir, 0o755)  # as an older shipcord left it
    server = make_server(data_dir, free_port(), free_port())
    await server.start()
    try:
        found = modes(data_dir)
        assert found.pop(".") == 0o700
        assert set(found) >= {"temporal.db", "temporal-server.log", "temporal-server.pid"}
        assert set(found.values()) == {0o600}, found
        assert server.pid is not None
        addresses = {
            connection.laddr.ip
            for connection in psutil.Process(server.pid).net_connections("inet")
            if connection.status == psutil.CONN_LISTEN
        }
        assert addresses == {"127.0.0.1"}
    finally:
        await server.stop()
