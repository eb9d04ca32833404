"""Drive a double running in another process: start it, then talk to /_control."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[2]


class ControlError(RuntimeError):
    pass


class ControlClient:
    """Thin async wrapper over the /_control API (see the package docstring)."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, self.control_url + path, json=body) as response:
            data = await response.json(content_type=None)
            if response.status >= 400:
                raise ControlError(f"{method} {path} -> {response.status}: {data}")
            return data

    async def state(self, *, requests: bool = True) -> dict[str, Any]:
        return await self._call("GET", "/state" + ("" if requests else "?requests=0"))

    async def seed(self, seed: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/seed", seed)

    async def dispatch(self, **body: Any) -> dict[str, Any]:
        """POST /interactions; keys: bot, user, kind, command, options, focused, custom_id,
        message_id, component_type, values, guild_id, channel_id, locale, timeout."""
        return await self._call("POST", "/interactions", body)

    async def interaction(self, interaction_id: str | int) -> dict[str, Any]:
        return await self._call("GET", f"/interactions/{interaction_id}")

    async def wait(self, kind: str, **body: Any) -> Any:
        return await self._call("POST", "/wait", {"kind": kind, **body})

    async def wait_for_reply(self, interaction_id: str | int, timeout: float = 10.0) -> Any:
        return await self.wait(
            "interaction_reply", interaction_id=str(interaction_id), timeout=timeout
        )

    async def inject_fault(self, path_regex: str, **body: Any) -> Any:
        return await self._call("POST", "/faults", {"path_regex": path_regex, **body})

    async def clear_faults(self) -> Any:
        return await self._call("DELETE", "/faults")

    async def set_latency(self, seconds: float) -> Any:
        return await self._call("PUT", "/latency", {"seconds": seconds})

    async def disconnect(self, bot: str | int, *, code: int = 4000, resumable: bool = True) -> Any:
        return await self._call(
            "POST", "/disconnect", {"bot": str(bot), "code": code, "resumable": resumable}
        )

    async def post_message(self, **body: Any) -> Any:
        return await self._call("POST", "/messages", body)

    async def patch_user(self, user: str | int, **body: Any) -> Any:
        return await self._call("PATCH", f"/users/{user}", body)

    async def violations(self) -> dict[str, Any]:
        """{"violations": [...], "report": str | None}: requests that broke Discord's spec."""
        return await self._call("GET", "/violations")

    async def take_violations(self) -> dict[str, Any]:
        """Like :meth:`violations`, and forgets them (for tests that break the spec on purpose)."""
        return await self._call("DELETE", "/violations")

    async def patch_channel(self, channel_id: str | int, **body: Any) -> Any:
        return await self._call("PATCH", f"/channels/{channel_id}", body)


class DoubleProcess:
    """``async with DoubleProcess(seed={...}) as proc:`` runs ``python -m tests.discord_double``.

    ``proc.info`` is the JSON line it printed (api_base, gateway_url, control_url, ids);
    ``proc.control`` is a :class:`ControlClient`. Extra CLI flags go in ``args``.
    """

    def __init__(
        self,
        seed: dict[str, Any] | str | Path | None = None,
        *,
        args: list[str] | None = None,
        python: str = sys.executable,
        startup_timeout: float = 20.0,
    ) -> None:
        self.seed = seed
        self.args = list(args or [])
        self.python = python
        self.startup_timeout = startup_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self.control: ControlClient = ControlClient("http://invalid")
        self._seed_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def api_base(self) -> str:
        return str(self.info["api_base"])

    @property
    def gateway_url(self) -> str:
        return str(self.info["gateway_url"])

    @property
    def ids(self) -> dict[str, Any]:
        return dict(self.info.get("ids") or {})

    async def __aenter__(self) -> DoubleProcess:
        command = [self.python, "-m", "tests.discord_double", "--port", "0", *self.args]
        if self.seed is not None:
            command += ["--seed", str(self._seed_path())]
        self.process = await asyncio.create_subprocess_exec(
            *command,
            cwd=str(REPO_ROOT),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self.startup_timeout)
        except TimeoutError:
            await self._terminate()
            raise
        if not line:
            code = await self.process.wait()
            raise RuntimeError(f"discord double exited with {code} before printing its address")
        self.info = json.loads(line)
        self.control = ControlClient(self.info["control_url"])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        report: str | None = None
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, ControlError, OSError):
                report = (await self.control.violations())["report"]
        await self.control.close()
        await self._terminate()
        if self._seed_dir is not None:
            self._seed_dir.cleanup()
        if report is not None:
            # Every request the double served must fit Discord's spec (see validation.py).
            if exc is not None:
                exc.add_note(report)
            else:
                raise AssertionError(report)

    async def _terminate(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    def _seed_path(self) -> Path:
        if isinstance(self.seed, (str, Path)):
            return Path(self.seed)
        self._seed_dir = tempfile.TemporaryDirectory(prefix="discord-double-")
        path = Path(self._seed_dir.name) / "seed.json"
        path.write_text(json.dumps(self.seed))
        return path
