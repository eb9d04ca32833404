from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.discord_double import DiscordDouble
from tests.engine.harness import BAD_TOKEN_ENV, ECHO_TOKEN_ENV, Engine, running_engine

ECHO_TOKEN = "echo-bot-test-token"


@pytest.fixture(scope="module")
async def double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as started:
        started.add_bot(token=ECHO_TOKEN, username="echo")
        yield started


@pytest.fixture(autouse=True, scope="module")
def bot_tokens() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in (ECHO_TOKEN_ENV, BAD_TOKEN_ENV)}
    os.environ[ECHO_TOKEN_ENV] = ECHO_TOKEN
    os.environ[BAD_TOKEN_ENV] = "a-token-discord-does-not-know"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def start_engine(
    temporal_client: Client, double: DiscordDouble, tmp_path: Path, task_queue: str
) -> Callable[..., AbstractAsyncContextManager[Engine]]:
    def start(**options: Any) -> AbstractAsyncContextManager[Engine]:
        return running_engine(temporal_client, double, tmp_path, task_queue, **options)

    return start
