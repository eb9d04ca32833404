"""The few Discord REST calls the activities make."""

from __future__ import annotations

from typing import Any

import aiohttp

from workflows.models import DEFAULT_API_BASE

REQUEST_TIMEOUT_SECONDS = 30.0


class DiscordApiError(Exception):
    """A Discord API call failed. `permanent` when asking again cannot help."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class TokenRejected(DiscordApiError):
    """Discord refused the bot token (401)."""

    def __init__(self) -> None:
        super().__init__(
            "Discord rejected the bot token (401 Unauthorized): check the token configured "
            "for this bot.",
            permanent=True,
        )


class DiscordRest:
    """Calls the Discord API at `api_base` with a bot token given per call."""

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
        try:
            async with self._session.request(
                method,
                self._api_base + path,
                headers=headers,
                json=json,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            ) as response:
                if response.status == 401:
                    raise TokenRejected()
                if response.status == 429:
                    raise DiscordApiError(
                        f"Discord rate-limited {method} {path}",
                        retry_after=await _retry_after(response),
                    )
                if response.status >= 500:
                    raise DiscordApiError(f"Discord answered {response.status} to {method} {path}")
                if response.status >= 400:
                    detail = await _error_message(response)
                    raise DiscordApiError(
                        f"Discord answered {response.status} to {method} {path}: {detail}",
                        permanent=True,
                    )
                if response.status == 204:
                    return None
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DiscordApiError(
                f"cannot reach the Discord API at {self._api_base} ({type(error).__name__})"
            ) from None


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
