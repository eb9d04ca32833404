"""The few Discord REST calls the activities make, with rate-limit and 5xx handling."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

DEFAULT_API_BASE = "https://discord.com/api/v10"
# Short: what still fails after this is an activity failure, which Temporal retries.
MAX_ATTEMPTS = 3
MAX_WAIT_SECONDS = 30.0
SERVER_ERROR_BACKOFF = 0.25


class DiscordApiError(Exception):
    """A Discord API call failed in a way that a later retry may fix."""


class TokenRejected(Exception):
    """Discord refused the bot token (401): retrying cannot help."""


class DiscordRest:
    """Calls the Discord API at `api_base` with a bot token given per call.

    A 429 waits for the `retry_after` it names; a 5xx or a connection error is tried
    again with backoff. What is still failing after that is raised for Temporal to retry.
    """

    def __init__(self, session: aiohttp.ClientSession, api_base: str = DEFAULT_API_BASE) -> None:
        self._session = session
        self._api_base = api_base.rstrip("/")

    async def current_user(self, token: str) -> dict[str, Any]:
        user: dict[str, Any] = await self._request("GET", "/users/@me", token)
        return user

    async def current_application(self, token: str) -> dict[str, Any]:
        application: dict[str, Any] = await self._request("GET", "/oauth2/applications/@me", token)
        return application

    async def global_commands(self, token: str, application_id: str) -> list[dict[str, Any]]:
        commands: list[dict[str, Any]] = await self._request(
            "GET", f"/applications/{application_id}/commands", token
        )
        return commands

    async def overwrite_global_commands(
        self, token: str, application_id: str, commands: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Bulk overwrite: the application ends with exactly `commands` (idempotent)."""
        applied: list[dict[str, Any]] = await self._request(
            "PUT", f"/applications/{application_id}/commands", token, json=commands
        )
        return applied

    async def _request(
        self, method: str, path: str, token: str, *, json: object | None = None
    ) -> Any:
        headers = {"Authorization": f"Bot {token}", "User-Agent": "shipcord (deployments, 0.1)"}
        last_problem = "no attempt made"
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._session.request(
                    method, self._api_base + path, headers=headers, json=json
                ) as response:
                    if response.status == 401:
                        raise TokenRejected(
                            "Discord rejected the bot token (401 Unauthorized): check the "
                            "token configured for this bot."
                        )
                    if response.status == 429:
                        wait = await _retry_after(response)
                        last_problem = f"rate limited on {method} {path}"
                        await asyncio.sleep(min(wait, MAX_WAIT_SECONDS))
                        continue
                    if response.status >= 500:
                        last_problem = f"Discord answered {response.status} to {method} {path}"
                        await asyncio.sleep(SERVER_ERROR_BACKOFF * 2**attempt)
                        continue
                    if response.status >= 400:
                        detail = await _error_message(response)
                        raise DiscordApiError(
                            f"Discord answered {response.status} to {method} {path}: {detail}"
                        )
                    if response.status == 204:
                        return None
                    return await response.json(content_type=None)
            except aiohttp.ClientError as error:
                last_problem = f"cannot reach the Discord API ({type(error).__name__})"
                await asyncio.sleep(SERVER_ERROR_BACKOFF * 2**attempt)
        raise DiscordApiError(last_problem)


async def _retry_after(response: aiohttp.ClientResponse) -> float:
    try:
        body = await response.json(content_type=None)
        return float(body.get("retry_after", 1.0))
    except (ValueError, TypeError, AttributeError, aiohttp.ContentTypeError):
        return float(response.headers.get("Retry-After", "1") or 1)


async def _error_message(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
        return str(body.get("message", body))[:200]
    except (ValueError, AttributeError, aiohttp.ContentTypeError):
        return (await response.text())[:200]
