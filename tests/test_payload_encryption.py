"""Optional payload encryption: with a key, Temporal holds only ciphertext (payloads and
failure texts), shipcord's own clients read everything, and the Web UI decodes through the
codec endpoint; without one, nothing changes (the guide client test covers that mode)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from shipcord.codec_server import CodecServer, start_codec_server
from shipcord.payload_codec import ENCRYPTED_ENCODING, EncryptionCodec, data_converter
from tests.cli_world import run_and_deploy, running_world, wait_for_deployment_state
from tests.discord_double import DiscordDouble
from tests.engine.harness import running_engine
from tests.leaks import payload_data, payloads
from workflows.release_operator import free_port

KEY = bytes(range(32))
UI_ORIGIN = "http://127.0.0.1:8233"
NAMESPACE = "default"


@pytest.fixture
async def encrypted_client(temporal_client: Client) -> Client:
    """A second client on the session's server, with shipcord's encrypting converter."""
    return await Client.connect(
        temporal_client.service_client.config.target_host,
        namespace=temporal_client.namespace,
        data_converter=data_converter(KEY),
    )


@pytest.fixture
async def double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as started:
        started.add_bot(token="echo-bot-test-token", username="echo")
        yield started


@pytest.fixture(autouse=True)
def echo_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCORD_TEST_ECHO_TOKEN", "echo-bot-test-token")


def names_a_code_version(event: Any) -> bool:
    """A patch marker, or Temporal's search attribute of patch ids: the SDK writes the id of
    a code version there, in clear, and nothing of the deployment."""
    kind = event.WhichOneof("attributes")
    if kind == "marker_recorded_event_attributes":
        return bool(event.marker_recorded_event_attributes.marker_name == PATCH_MARKER)
    if kind == "upsert_workflow_search_attributes_event_attributes":
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        return set(fields.indexed_fields) == {CHANGE_VERSION_ATTRIBUTE}
    return False


async def raw_payloads(client: Client, workflow_id: str) -> list[Any]:
    """Every payload of the workflow's history that carries data, as the server stores it."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    found = []
    for event in history.events:
        if names_a_code_version(event):
            continue
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and (
            marker.marker_name == LOCAL_ACTIVITY_MARKER
        ):
            # Its "data" is the SDK's note of which local activity ran, when and how often,
            # in clear; its result and failure are the deployment's.
            for name, detail in marker.details.items():
                if name != "data":
                    found.extend(payloads(detail))
            found.extend(payloads(marker.failure))
            continue
        found.extend(payloads(event))
    return found


PATCH_MARKER = "core_patch"
LOCAL_ACTIVITY_MARKER = "core_local_activity"
CHANGE_VERSION_ATTRIBUTE = "TemporalChangeVersion"


async def test_with_a_key_the_server_holds_only_ciphertext(
    encrypted_client: Client,
    temporal_client: Client,
    double: DiscordDouble,
    tmp_path: Path,
    task_queue: str,
) -> None:
    async with running_engine(encrypted_client, double, tmp_path, task_queue) as engine:
        good = await engine.deploy(bot="echo", version="1.0.0")
        bad = await engine.deploy(bot="crashy", version="1.0.0")
        assert (await engine.deployments.result(good)).success
        failed = await engine.deployments.result(bad)
        # shipcord's own clients read everything, failures included.
        assert failed.error is not None and "exited with status 3" in failed.error
        status = await engine.deployments.status(good)
        assert status.bot_name == "echo" and status.state == "succeeded"

    for workflow_id in (good, bad):
        payloads = await raw_payloads(temporal_client, workflow_id)
        assert payloads
        assert {p.metadata["encoding"] for p in payloads} == {ENCRYPTED_ENCODING}
        history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
        text = history.to_json() + "".join(
            data.decode("latin-1") for event in history.events for data in payload_data(event)
        )
        # Workflow ids and types stay readable (Temporal needs them); contents do not.
        for plain in ("botName", "exited with status", "Release 1 of", "healthy_after"):
            assert plain not in text, plain


@pytest.fixture
async def codec_server() -> AsyncIterator[CodecServer]:
    server = await start_codec_server(
        EncryptionCodec(KEY),
        host="127.0.0.1",
        port=0,
        namespace=NAMESPACE,
        allowed_origins={UI_ORIGIN},
    )
    try:
        yield server
    finally:
        await server.stop()


async def post(
    server: CodecServer, path: str, body: object, **headers: str
) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{server.port}{path}", data=json.dumps(body), headers=headers
        ) as response,
    ):
        return response.status, dict(response.headers), await response.text()


async def test_the_codec_endpoint_decodes_what_shipcord_encrypted(
    codec_server: CodecServer,
) -> None:
    codec = EncryptionCodec(KEY)
    plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
             "data": base64.b64encode(b'{"botName":"echo"}').decode()}  # fmt: skip
    message = json_format.ParseDict({"payloads": [plain]}, Payloads())
    sealed = await codec.encode(message.payloads)
    body = json.loads(json_format.MessageToJson(Payloads(payloads=sealed)))

    status, headers, text = await post(
        codec_server, "/decode", body, Origin=UI_ORIGIN, **{"X-Namespace": NAMESPACE}
    )

    assert status == 200 and headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    [decoded] = json.loads(text)["payloads"]
    assert base64.b64decode(decoded["data"]) == b'{"botName":"echo"}'
    # The Web UI's origin only, shipcord's namespace only.
    assert (await post(codec_server, "/decode", body, Origin="http://evil.test"))[0] == 403
    assert (await post(codec_server, "/decode", body, **{"X-Namespace": "other"}))[0] == 403
    assert (await post(codec_server, "/decode", {"nope": 1}))[0] == 400
    # Sealed under another key: refused by name.
    other = json.loads(
        json_format.MessageToJson(
            Payloads(payloads=await EncryptionCodec(os.urandom(32)).encode(message.payloads))
        )
    )
    status, _, text = await post(codec_server, "/decode", other)
    assert status == 400 and "not with this key" in text
    async with (
        aiohttp.ClientSession() as http,
        http.options(
            f"http://127.0.0.1:{codec_server.port}/decode",
            headers={"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST"},
        ) as preflight,
    ):
        assert preflight.status == 204
        assert "X-Namespace" in preflight.headers["Access-Control-Allow-Headers"]


@pytest.mark.timeout(300)
async def test_shipcord_run_with_a_key_encrypts_and_the_web_ui_decodes_through_it(
    tmp_path: Path,
) -> None:
    async with running_world(tmp_path) as world:
        codec_port = free_port()
        world.env.update(
            SHIPCORD_PAYLOAD_KEY=base64.b64encode(KEY).decode(),
            SHIPCORD_CODEC_PORT=str(codec_port),
        )
        shipcord = await run_and_deploy(world, "echo", "1.0.0")
        workflow_id = await wait_for_deployment_state(world, "succeeded")
        ui = f"http://127.0.0.1:{world.env['SHIPCORD_TEMPORAL_UI_PORT']}"
        settings = json.loads(await asyncio.to_thread(fetch, f"{ui}/api/v1/settings"))
        assert settings["Codec"]["Endpoint"] == f"http://127.0.0.1:{codec_port}"

        plain = await Client.connect(f"127.0.0.1:{world.env['SHIPCORD_TEMPORAL_PORT']}")
        payloads = await raw_payloads(plain, workflow_id)
        assert {p.metadata["encoding"] for p in payloads} == {ENCRYPTED_ENCODING}
        # What the browser does: post the stored payloads to the endpoint the UI names.
        body = json.loads(json_format.MessageToJson(Payloads(payloads=payloads)))
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{codec_port}/decode",
                data=json.dumps(body),
                headers={"Origin": ui, "X-Namespace": "default"},
            ) as response,
        ):
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ui
            decoded = await response.json()
        texts = [base64.b64decode(p.get("data", "")).decode() for p in decoded["payloads"]]
        assert any('"botName":"echo"' in text.replace(" ", "") for text in texts)
        shipcord.process.send_signal(signal.SIGTERM)
        assert await shipcord.finish() == 0


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
