"""The Discord double against the real, unpatched discord.py client (REST + gateway)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.discord_double import DiscordDouble, DoubleProcess
from tests.discord_double.validation import spec_validator

pytestmark = pytest.mark.timeout(60)

TOKEN = "token-shipcord"
OTHER_TOKEN = "token-sample"


@contextlib.asynccontextmanager
async def pointed_at(double: DiscordDouble | DoubleProcess) -> AsyncIterator[None]:
    """Point discord.py's REST root and gateway at the double, restoring them afterwards."""
    import yarl

    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = double.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(str(double.gateway_url))
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest.fixture
def make_double() -> Callable[..., contextlib.AbstractAsyncContextManager[DiscordDouble]]:
    @contextlib.asynccontextmanager
    async def factory(**kwargs: Any) -> AsyncIterator[DiscordDouble]:
        async with DiscordDouble(**kwargs) as double, pointed_at(double):
            yield double

    return factory


@pytest.fixture
async def double(make_double: Any) -> AsyncIterator[DiscordDouble]:
    async with make_double() as started:
        yield started


class World:
    """A guild with a deployers role, alice (deployer), bob, #general, #deploys, #locked."""

    def __init__(self, double: DiscordDouble) -> None:
        self.alice = double.add_user("alice")
        self.bob = double.add_user("bob")
        self.guild = double.add_guild("Test", owner_id=self.bob.id)
        self.deployers = double.add_role(self.guild.id, "deployers", permissions=0)
        double.add_member(self.guild.id, self.alice.id, roles=[self.deployers.id])
        self.general = double.state.channel(self.guild.default_channel_id or 0)
        self.deploys = double.add_channel(self.guild.id, "deploys")
        self.locked = double.add_channel(self.guild.id, "locked", deny_bots=True)
        self.bot = double.add_bot(TOKEN, "shipcord", guilds=[self.guild])


@pytest.fixture
def world(double: DiscordDouble) -> World:
    return World(double)


class FastBot(commands.Bot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every re-IDENTIFY; not needed against the double."""


def new_bot(**kwargs: Any) -> commands.Bot:
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    return FastBot(command_prefix="!", intents=intents, guild_ready_timeout=0.05, **kwargs)


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str = TOKEN) -> AsyncIterator[discord.Client]:
    """Start ``client`` and wait for on_ready; always close it afterwards."""
    task = asyncio.create_task(client.start(token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises the login/connect error
            raise AssertionError("client stopped before becoming ready")
        if ready not in done:
            raise AssertionError("client did not become ready within 10s")
        yield client
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task


async def test_bot_logs_in_and_sees_guild_channels_and_members(
    double: DiscordDouble, world: World
) -> None:
    bot = new_bot()
    async with running(bot):
        assert bot.user is not None and bot.user.id == world.bot.user_id
        assert bot.user.name == "shipcord" and bot.user.bot
        assert bot.application_id == world.bot.application_id
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Test" and not guild.unavailable
        assert {c.name for c in guild.text_channels} == {"general", "deploys", "locked"}
        alice = guild.get_member(world.alice.id)
        assert alice is not None and [r.name for r in alice.roles] == ["@everyone", "deployers"]
        assert guild.owner_id == world.bob.id and guild.me.id == world.bot.user_id
        locked = guild.get_channel(world.locked.id)
        assert isinstance(locked, discord.TextChannel)
        assert not locked.permissions_for(guild.me).send_messages
        assert double.bot_connected(world.bot)
        assert world.bot.identify_count == 1
    paths = [(r.method, r.path, r.status) for r in double.requests]
    assert ("GET", "/users/@me", 200) in paths
    assert ("GET", "/oauth2/applications/@me", 200) in paths
    await double.wait_for(lambda: not double.bot_connected(world.bot), 5, "bot to disconnect")


async def test_send_edit_reply_upload_and_errors(double: DiscordDouble, world: World) -> None:
    bot = new_bot()
    async with running(bot):
        channel = bot.get_channel(world.deploys.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send(
            "deploying v1", embed=discord.Embed(title="Deploy", description="queued")
        )
        await sent.edit(
            content="deployed v1", embed=discord.Embed(title="Deploy", description="done")
        )
        reply = await sent.reply("details", file=discord.File(io.BytesIO(b"log line"), "log.txt"))

        stored = double.message(sent.id)
        assert stored.author_id == world.bot.user_id
        assert [v.content for v in stored.versions] == ["deploying v1", "deployed v1"]
        assert stored.embeds[0]["description"] == "done" and stored.edit_count == 1
        stored_reply = double.message(reply.id)
        assert stored_reply.message_reference is not None
        assert stored_reply.message_reference["message_id"] == str(sent.id)
        assert stored_reply.attachments[0]["filename"] == "log.txt"
        assert stored_reply.files[stored_reply.attachments[0]["id"]] == b"log line"
        assert reply.attachments[0].filename == "log.txt"
        fetched = await channel.fetch_message(sent.id)
        assert fetched.content == "deployed v1"

        locked = bot.get_channel(world.locked.id)
        assert isinstance(locked, discord.TextChannel)
        with pytest.raises(discord.Forbidden) as forbidden:
            await locked.send("nope")
        assert forbidden.value.code == 50013
        await sent.delete()
        with pytest.raises(discord.NotFound) as missing:
            await channel.fetch_message(sent.id)
        assert missing.value.code == 10008
        with pytest.raises(discord.NotFound) as unknown_channel:
            await bot.http.send_message(1234, params=discord.http.handle_message_parameters("x"))
        assert unknown_channel.value.code == 10003

        world.alice.dms_closed = False
        alice = await bot.fetch_user(world.alice.id)
        await alice.send("your deploy finished")
        assert [m.content for m in double.dm_messages(world.alice)] == ["your deploy finished"]
        world.bob.dms_closed = True
        bob = await bot.fetch_user(world.bob.id)
        with pytest.raises(discord.Forbidden) as closed:
            await bob.send("hello?")
        assert closed.value.code == 50007


def add_deploy_commands(bot: commands.Bot, seen: dict[str, Any]) -> None:
    @bot.tree.command(name="deploy", description="Deploy a bot")
    @app_commands.describe(app="Which app", replicas="How many")
    async def deploy(interaction: discord.Interaction, app: str, replicas: int = 1) -> None:
        assert isinstance(interaction.user, discord.Member)
        seen["deploy"] = (app, replicas, [r.name for r in interaction.user.roles])
        await interaction.response.defer(thinking=True, ephemeral=True)
        await interaction.followup.send(f"Deploying {app} x{replicas}")
        await interaction.edit_original_response(content=f"Deployed {app} x{replicas}")

    async def apps(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = ["alpha", "alpine", "beta"]
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

    @bot.tree.command(name="status", description="Show status")
    @app_commands.autocomplete(app=apps)
    async def status(interaction: discord.Interaction, app: str) -> None:
        await interaction.response.send_message(f"{app} is up")


async def test_slash_command_options_roles_defer_and_followup(
    double: DiscordDouble, world: World
) -> None:
    bot = new_bot()
    seen: dict[str, Any] = {}
    add_deploy_commands(bot, seen)
    async with running(bot):
        bot.tree.copy_global_to(guild=discord.Object(world.guild.id))
        synced = await bot.tree.sync(guild=discord.Object(world.guild.id))
        assert {c.name for c in synced} == {"deploy", "status"}
        registered = {c["name"]: c for c in double.commands(world.bot, world.guild.id)}
        assert registered["deploy"]["options"][0]["name"] == "app"
        assert synced[0].id == int(registered[synced[0].name]["id"])

        record = await double.dispatch_command(
            world.bot,
            "deploy",
            {"app": "web", "replicas": 3},
            user=world.alice,
            channel=world.deploys,
        )
        assert record.data["id"] == registered["deploy"]["id"]
        assert record.data["guild_id"] == str(world.guild.id)
        await double.wait_for_interaction_reply(record.id)
        await double.wait_for(
            lambda: any(r.kind == "edit_original" for r in record.responses), 5, "final edit"
        )
    assert seen["deploy"] == ("web", 3, ["@everyone", "deployers"])
    assert record.callback_type == 5
    reply = double.message(record.reply_message_id)
    assert reply.content == "Deployed web x3" and reply.ephemeral
    assert reply.channel_id == world.deploys.id
    assert [v.content for v in reply.versions] == ["", "Deploying web x3", "Deployed web x3"]
    assert [r.kind for r in record.responses] == ["callback", "followup", "edit_original"]


async def test_autocomplete_round_trip(double: DiscordDouble, world: World) -> None:
    bot = new_bot()
    add_deploy_commands(bot, {})
    async with running(bot):
        await bot.tree.sync()
        choices = await double.autocomplete(
            world.bot, "status", {"app": "al"}, focused="app", user=world.alice
        )
        assert [c["value"] for c in choices] == ["alpha", "alpine"]
        record = await double.dispatch_command(
            world.bot, "status", {"app": "beta"}, user=world.alice
        )
        answered = await double.wait_for_interaction_reply(record.id)
    assert answered.callback_type == 4
    message = double.message(answered.reply_message_id)
    assert message.content == "beta is up" and not message.ephemeral
    assert message.channel_id == world.general.id and message.type == 20


class ApproveView(discord.ui.View):
    def __init__(self, clicks: list[int]) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @discord.ui.button(label="Approve", custom_id="deploy:approve", style=discord.ButtonStyle.green)
    async def approve(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        self.clicks.append(interaction.user.id)
        await interaction.response.edit_message(content="Approved", view=None)


async def test_button_click_reaches_persistent_view(double: DiscordDouble, world: World) -> None:
    bot = new_bot()
    clicks: list[int] = []
    async with running(bot):
        channel = bot.get_channel(world.deploys.id)
        assert isinstance(channel, discord.TextChannel)
        # Posted "before a restart": no view instance is bound to this message.
        params = discord.http.handle_message_parameters("Approve deploy?", view=ApproveView([]))
        sent = await bot.http.send_message(channel.id, params=params)
        bot.add_view(ApproveView(clicks))  # persistent: matched by custom_id alone
        stored = double.message(sent["id"])
        button = stored.components[0]["components"][0]
        assert button["custom_id"] == "deploy:approve"

        record = await double.dispatch_component(
            world.bot, stored.id, "deploy:approve", user=world.alice
        )
        await double.wait_for_interaction_reply(record.id)
    assert clicks == [world.alice.id]
    assert record.callback_type == 7
    assert stored.content == "Approved" and stored.components == []
    assert [v.content for v in stored.versions] == ["Approve deploy?", "Approved"]


async def test_edit_burst_over_limit_gets_429s_that_discordpy_retries(make_double: Any) -> None:
    async with make_double(edit_limit=3, edit_window=0.25, advertise_ratelimits=False) as double:
        world = World(double)
        bot = new_bot()
        async with running(bot):
            channel = bot.get_channel(world.deploys.id)
            assert isinstance(channel, discord.TextChannel)
            message = await channel.send("step 0")
            await asyncio.gather(*(message.edit(content=f"step {i}") for i in range(1, 9)))
        stored = double.message(message.id)
        assert sorted(v.content for v in stored.versions) == [f"step {i}" for i in range(9)]
        assert double.rate_limited_count >= 1
        assert double.rate_limited_by_channel[world.deploys.id] == double.rate_limited_count
        limited = [r for r in double.requests if r.status == 429]
        assert all(r.method == "PATCH" for r in limited)


async def test_advertised_edit_limit_makes_discordpy_pace_itself(make_double: Any) -> None:
    async with make_double(edit_limit=2, edit_window=0.2) as double:
        world = World(double)
        bot = new_bot()
        async with running(bot):
            channel = bot.get_channel(world.deploys.id)
            assert isinstance(channel, discord.TextChannel)
            message = await channel.send("step 0")
            started = time.monotonic()
            await asyncio.gather(*(message.edit(content=f"step {i}") for i in range(1, 6)))
            elapsed = time.monotonic() - started
        assert double.message(message.id).edit_count == 5
        assert double.rate_limited_count == 0
        assert elapsed >= 0.4  # 5 edits at 2 per 0.2 s need at least two resets
        patch = double.requests_matching("PATCH", r"/messages/")[0]
        assert patch.status == 200


async def test_injected_server_error_is_retried(double: DiscordDouble, world: World) -> None:
    bot = new_bot()
    async with running(bot):
        channel = bot.get_channel(world.general.id)
        assert isinstance(channel, discord.TextChannel)
        fault = double.inject_fault("POST", r"^/channels/\d+/messages$", status=500, times=1)
        sent = await channel.send("after a blip")
    assert fault.hits == 1
    statuses = [r.status for r in double.requests_matching("POST", r"/messages$")]
    assert statuses == [500, 200]
    assert double.message(sent.id).content == "after a blip"


async def test_unknown_token_fails_login(double: DiscordDouble, world: World) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-a-token")
    await client.close()
    assert double.requests[-1].status == 401 and double.requests[-1].bot_user_id is None

    async with aiohttp.ClientSession() as session:
        async with session.get(
            double.api_base + "/users/@me", headers={"Authorization": "Bot nope"}
        ) as response:
            assert response.status == 401
            assert response.headers["Content-Type"] == "application/json"
            assert await response.json() == {"message": "401: Unauthorized", "code": 0}


async def test_raw_rest_application_commands(double: DiscordDouble, world: World) -> None:
    headers = {"Authorization": f"Bot {TOKEN}"}
    app = world.bot.application_id
    base = f"{double.api_base}/applications/{app}/commands"
    async with aiohttp.ClientSession(headers=headers) as session:
        body = [{"name": "deploy", "description": "Deploy", "type": 1}]
        async with session.put(base, json=body) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            [created] = await response.json()
        async with session.put(base, json=body) as response:
            [again] = await response.json()
        assert again["id"] == created["id"] and again["application_id"] == str(app)
        async with session.delete(f"{base}/{created['id']}") as response:
            assert response.status == 204
        async with session.get(base) as response:
            assert await response.json() == []
        async with session.get(f"{double.api_base}/gateway/bot") as response:
            assert (await response.json())["url"] == str(double.gateway_url)


async def test_bots_with_different_tokens_reconnect_and_resume(
    double: DiscordDouble, world: World
) -> None:
    sample = double.add_bot(OTHER_TOKEN, "sample", guilds=[world.guild])
    shipcord, other = new_bot(), new_bot()
    hits: list[str] = []

    @shipcord.tree.command(name="ping", description="Ping")
    async def ping(interaction: discord.Interaction) -> None:
        hits.append("shipcord")
        await interaction.response.send_message("pong")

    @other.tree.command(name="ping", description="Ping")
    async def other_ping(interaction: discord.Interaction) -> None:
        hits.append("sample")
        await interaction.response.send_message("pong from sample")

    async with running(shipcord), running(other, OTHER_TOKEN):
        assert other.user is not None and other.user.id == sample.user_id
        record = await double.dispatch_command(sample, "ping", user=world.alice)
        await double.wait_for_interaction_reply(record.id)
        assert hits == ["sample"]

        assert await double.disconnect_bot(world.bot) == 1
        record = await double.dispatch_command(world.bot, "ping", user=world.alice)
        await double.wait_for_interaction_reply(record.id)
        assert world.bot.resume_count == 1 and world.bot.identify_count == 1

        await double.disconnect_bot(world.bot, resumable=False)
        await double.wait_for_bot_ready(world.bot)
        assert world.bot.identify_count == 2
        await asyncio.wait_for(shipcord.wait_until_ready(), 5)

        user_message = double.post_user_message(world.general.id, world.alice, "hello bots")
        received = await shipcord.wait_for(
            "message", check=lambda m: m.id == user_message.id, timeout=5
        )
        assert received.content == "hello bots"
    assert hits == ["sample", "shipcord"]


async def test_wait_for_timeout_explains_itself(double: DiscordDouble, world: World) -> None:
    with pytest.raises(TimeoutError, match="bot 'shipcord' to be connected"):
        await double.wait_for_bot_ready(world.bot, timeout=0.05)


SEED = {
    "users": [{"key": "alice", "username": "alice"}],
    "bots": [{"key": "shipcord", "token": TOKEN, "username": "shipcord", "guilds": ["main"]}],
    "guilds": [
        {
            "key": "main",
            "name": "Main",
            "owner": "alice",
            "roles": [{"key": "deployers", "name": "deployers"}],
            "channels": [{"key": "deploys", "name": "deploys"}],
            "members": [{"user": "alice", "roles": ["deployers"]}],
        }
    ],
}


async def test_subprocess_mode_serves_bot_and_control_api() -> None:
    async with DoubleProcess(seed=SEED) as proc, pointed_at(proc):
        assert proc.api_base.startswith("http://127.0.0.1:") and proc.api_base.endswith("/api/v10")
        assert proc.gateway_url.endswith("/gateway/")
        ids = proc.ids
        channel_id = ids["guilds"]["main"]["channels"]["deploys"]
        state = await proc.control.state()
        assert [b["username"] for b in state["bots"]] == ["shipcord"]
        assert state["guilds"][0]["members"][0]["roles"] == [
            ids["guilds"]["main"]["roles"]["deployers"]
        ]

        bot = new_bot()

        @bot.tree.command(name="hello", description="Say hello")
        async def hello(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"hello {name}", ephemeral=True)

        async with running(bot):
            await proc.control.wait("bot_ready", bot="shipcord", timeout=5)
            await bot.tree.sync()
            dispatched = await proc.control.dispatch(
                bot="shipcord",
                user="alice",
                command="hello",
                options={"name": "you"},
                channel_id=channel_id,
            )
            answered = await proc.control.wait_for_reply(dispatched["id"], timeout=5)
            assert answered["reply"]["content"] == "hello you" and answered["reply"]["ephemeral"]
            channel = bot.get_channel(int(channel_id))
            assert isinstance(channel, discord.TextChannel)
            await channel.send("from the bot")
            found = await proc.control.wait(
                "message", channel_id=channel_id, contains="from the bot"
            )
            assert found["author_id"] == ids["bots"]["shipcord"]["user_id"]
        state = await proc.control.state()
        assert (
            state["commands"][ids["bots"]["shipcord"]["application_id"]]["global"][0]["name"]
            == "hello"
        )
        assert any(r["path"] == "/users/@me" for r in state["requests"])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{proc.api_base}/nowhere") as response:
                assert response.status == 404
        taken = await proc.control.take_violations()
        assert [v["kind"] for v in taken["violations"]] == ["route"]
        assert (await proc.control.violations())["violations"] == []


async def test_subcommand_options_resolve_to_discord_objects(
    double: DiscordDouble, world: World
) -> None:
    bot = new_bot()
    seen: dict[str, Any] = {}
    config = app_commands.Group(name="config", description="Configure")

    @config.command(name="grant", description="Grant a role")
    async def grant(
        interaction: discord.Interaction,
        who: discord.Member,
        role: discord.Role,
        where: discord.TextChannel,
    ) -> None:
        seen["grant"] = (who.id, role.name, where.name, interaction.channel_id)
        await interaction.response.send_message("granted", ephemeral=True)

    @bot.tree.command(name="whoami", description="Who am I")
    async def whoami(interaction: discord.Interaction) -> None:
        seen["whoami"] = (interaction.guild_id, type(interaction.channel).__name__)
        await interaction.response.send_message(f"you are {interaction.user.name}")

    bot.tree.add_command(config)
    async with running(bot):
        await bot.tree.sync()
        options = {"who": world.alice, "role": world.deployers, "where": world.deploys}
        record = await double.dispatch_command(world.bot, "config grant", options, user=world.bob)
        await double.wait_for_interaction_reply(record.id)
        reply = double.interaction_reply(record.id)
        assert reply is not None and reply.content == "granted" and reply.ephemeral

        stranger = double.add_user("carol")  # shares no guild with the bot: a DM interaction
        record = await double.dispatch_command(world.bot, "whoami", user=stranger)
        await double.wait_for_interaction_reply(record.id)
    assert seen["grant"] == (world.alice.id, "deployers", "deploys", world.general.id)
    assert seen["whoami"] == (None, "DMChannel")
    assert [m.content for m in double.dm_messages(stranger)] == ["you are carol"]


async def test_privileged_intents_and_expired_interactions(make_double: Any) -> None:
    async with make_double(interaction_deadline=0.0) as double:
        world = World(double)
        double.add_bot(OTHER_TOKEN, "limited", guilds=[world.guild], privileged_intents=False)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with running(new_bot(), OTHER_TOKEN):
                pass

        bot = new_bot()
        errors: list[int] = []

        @bot.tree.command(name="late", description="Answers too late")
        async def late(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.send_message("too late")
            except discord.NotFound as error:
                errors.append(error.code)

        async with running(bot):
            await double.dispatch_command(world.bot, "late", user=world.alice)
            await double.wait_for(lambda: errors, 5, "the late callback to be refused")
        assert errors == [10062]


async def test_interaction_webhooks_have_a_bucket_per_token_apart_from_the_channel(
    make_double: Any,
) -> None:
    """Two interactions in one channel: each token has its own 5-per-2 s bucket, and
    neither takes from the channel's message buckets."""
    async with make_double(webhook_limit=2, webhook_window=0.5, advertise_ratelimits=False) as d:
        world = World(d)
        bot = new_bot()
        replies: dict[int, discord.InteractionMessage] = {}

        @bot.tree.command(name="show", description="Answers with a message it edits later")
        async def show(interaction: discord.Interaction) -> None:
            response = await interaction.response.send_message("v0")
            assert isinstance(response.resource, discord.InteractionMessage)
            replies[interaction.id] = response.resource

        async with running(bot):
            records = [
                await d.dispatch_command(world.bot, "show", user=world.alice, channel=world.deploys)
                for _ in range(2)
            ]
            await d.wait_for(lambda: len(replies) == 2, 5, "both answers")
            # Two edits each at once: within each token's bucket, so no 429 at all.
            await asyncio.gather(
                *(replies[r.id].edit(content=f"v{n}") for r in records for n in (1, 2))
            )
            assert d.rate_limited_count == 0
            # The channel's own buckets are untouched: a full burst of posts still passes.
            channel = bot.get_channel(world.deploys.id)
            assert isinstance(channel, discord.TextChannel)
            await asyncio.gather(*(channel.send(f"post {n}") for n in range(5)))
            assert d.rate_limited_count == 0
            # A third edit within one token's window is refused (and retried by discord.py).
            first = replies[records[0].id]
            await asyncio.gather(*(first.edit(content=f"w{n}") for n in range(3)))
        limited = [r for r in d.requests if r.status == 429]
        assert limited and all(r.path.startswith("/webhooks/") for r in limited)
        assert d.rate_limited_by_channel == {world.deploys.id: len(limited)}
        assert d.message(first.id).content in {"w0", "w1", "w2"}
        assert d.message(first.id).edit_count == 5


async def test_channel_posts_have_discords_bucket_per_channel(make_double: Any) -> None:
    async with make_double(advertise_ratelimits=False, send_window=0.5) as double:
        world = World(double)
        bot = new_bot()
        async with running(bot):
            deploys = bot.get_channel(world.deploys.id)
            general = bot.get_channel(world.general.id)
            assert isinstance(deploys, discord.TextChannel)
            assert isinstance(general, discord.TextChannel)
            await asyncio.gather(*(c.send("x") for c in (deploys, general) for _ in range(5)))
            assert double.rate_limited_count == 0  # five each: two buckets, both full
            await asyncio.gather(*(deploys.send("y") for _ in range(2)))
        assert double.rate_limited_by_channel == {world.deploys.id: double.rate_limited_count}
        assert double.rate_limited_count >= 1


async def test_an_interaction_token_expires(make_double: Any) -> None:
    async with make_double(interaction_token_lifetime=0.3) as double:
        world = World(double)
        bot = new_bot()
        errors: list[tuple[int, int]] = []

        @bot.tree.command(name="answer", description="Answers in public")
        async def answer(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")

        async with running(bot):
            record = await double.dispatch_command(world.bot, "answer", user=world.alice)
            await double.wait_for_interaction_reply(record.id)
            original = double.message(record.reply_message_id)
            # Time passing is the subject here: the token outlives its lifetime.
            await asyncio.sleep(0.4)
            webhook = discord.Webhook.partial(world.bot.application_id, record.token, client=bot)
            try:
                await webhook.edit_message(original.id, content="too late")
            except discord.HTTPException as error:
                errors.append((error.status, error.code))
            # The bot may still edit its public answer as a channel message.
            channel = bot.get_channel(original.channel_id)
            assert isinstance(channel, discord.TextChannel)
            await channel.get_partial_message(original.id).edit(content="edited by the bot")
        assert errors == [(401, 50027)]
        assert original.content == "edited by the bot"


# -- Discord's OpenAPI spec --------------------------------------------------------------


def button_row(custom_id: str) -> list[dict[str, Any]]:
    return [
        {
            "type": 1,
            "components": [{"type": 2, "style": 1, "label": "Go", "custom_id": custom_id}],
        }
    ]


async def test_a_request_that_breaks_the_spec_is_answered_as_discord_would_and_recorded(
    double: DiscordDouble, world: World
) -> None:
    headers = {"Authorization": f"Bot {TOKEN}"}
    messages = f"{double.api_base}/channels/{world.deploys.id}/messages"
    async with aiohttp.ClientSession(headers=headers) as session:
        body = {"content": "deploy?", "components": button_row("x" * 101)}
        async with session.post(messages, json=body) as response:
            assert response.status == 400
            assert await response.json() == {
                "message": "Invalid Form Body",
                "code": 50035,
                "errors": {
                    "components": {
                        "0": {
                            "components": {
                                "0": {
                                    "custom_id": {
                                        "_errors": [
                                            {
                                                "code": "BASE_TYPE_MAX_LENGTH",
                                                "message": "Must be 100 or fewer in length.",
                                            }
                                        ]
                                    }
                                }
                            }
                        }
                    }
                },
            }
        async with session.get(f"{double.api_base}/channels/{world.deploys.id}/pins2") as response:
            assert response.status == 404
            assert await response.json() == {"message": "404: Not Found", "code": 0}
        async with session.put(messages, json={"content": "x"}) as response:
            assert response.status == 405
        async with session.get(messages, params={"limit": "101"}) as response:
            assert response.status == 400
    assert double.messages(world.deploys) == []
    found = double.take_violations()
    assert [(v.kind, v.field, v.code) for v in found] == [
        ("body", "components.0.components.0.custom_id", "BASE_TYPE_MAX_LENGTH"),
        ("route", "", "0"),
        ("method", "", "0"),
        ("query", "limit", "NUMBER_TYPE_MAX"),
    ]
    assert str(found[0]) == (
        f"POST /channels/{world.deploys.id}/messages (spec: POST "
        "/channels/{channel_id}/messages): components.0.components.0.custom_id: "
        "Must be 100 or fewer in length."
    )
    assert double.violations == []


async def test_discordpy_reads_the_spec_error_like_discords(
    double: DiscordDouble, world: World
) -> None:
    bot = new_bot()
    async with running(bot):
        route = discord.http.Route(
            "POST", "/channels/{channel_id}/messages", channel_id=world.deploys.id
        )
        embed = {"title": "t" * 257}
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.request(route, json={"content": "x", "embeds": [embed]})
        assert refused.value.status == 400 and refused.value.code == 50035
        assert "In embeds.0.title: Must be 256 or fewer in length." in refused.value.text
    [violation] = double.take_violations()
    assert violation.field == "embeds.0.title"


async def test_requests_that_fit_the_spec_pass(double: DiscordDouble, world: World) -> None:
    bot = new_bot()
    async with running(bot):
        channel = bot.get_channel(world.deploys.id)
        assert isinstance(channel, discord.TextChannel)
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Go", custom_id="x" * 100))
        # discord.py sends allowed_mentions' users and the DM recipient as JSON integers.
        await channel.send(
            f"<@{world.alice.id}> ready",
            view=view,
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(world.alice.id)]),
        )
        alice = await bot.fetch_user(world.alice.id)
        await alice.send("done", file=discord.File(io.BytesIO(b"log"), "log.txt"))
    assert double.violations == []
    sent = [r for r in double.requests if r.method == "POST" and "messages" in r.path]
    assert len(sent) == 2 and all(r.status == 200 for r in sent)
    assert any(isinstance(u, int) for u in sent[0].json["allowed_mentions"]["users"])


async def test_a_double_left_with_violations_fails_its_block() -> None:
    with pytest.raises(AssertionError, match=r"broke Discord's OpenAPI spec") as failed:
        async with DiscordDouble() as double:
            double.add_bot(TOKEN, "shipcord")
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bot {TOKEN}"}
                async with session.get(f"{double.api_base}/nowhere", headers=headers):
                    pass
    assert "GET /nowhere: no such route in the spec" in str(failed.value)
    async with DiscordDouble(validate=False) as unchecked:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{unchecked.api_base}/nowhere") as response:
                assert response.status == 404
        assert unchecked.violations == []


def test_every_route_the_double_serves_is_in_the_spec(double: DiscordDouble) -> None:
    def shape(template: str) -> str:
        return re.sub(r"\{\w+\}", "{}", template)

    spec_routes = {(m, shape(t)) for m, t in spec_validator().routes()}
    served = {
        (route.method, shape(re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", route.pattern.pattern)))
        for route in double.api.router.routes
    }
    served = {(m, t.removeprefix("^").removesuffix("$")) for m, t in served}
    assert served - spec_routes == set()


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "problem"),
    [
        ("POST", "/users/@me/channels", {}, {"recipient_id": 123}, None),
        ("POST", "/users/@me/channels", {}, {"recipient_id": "12a"}, "recipient_id"),
        ("POST", "/users/@me/channels", {}, None, "a request body is required"),
        ("GET", "/users/@me", {}, None, None),
        ("GET", "/channels/@me", {}, None, "path parameters do not fit"),
        ("GET", "/channels/1/messages", {"limit": "100", "before": "5"}, None, None),
        ("GET", "/channels/1/messages", {"limit": "0"}, None, "limit"),
        ("GET", "/guilds/1", {"with_counts": "true"}, None, None),
        ("POST", "/channels/1/messages", {}, {"content": "x" * 2001}, "content: Must be 2000"),
        ("PATCH", "/channels/1/messages/2", {}, {"content": "x" * 2001}, "Must be 2000 or"),
        ("POST", "/channels/1/messages", {}, {"content": "x" * 2000}, None),
        ("POST", "/channels/1/messages", {}, {"embeds": [{}] * 11}, "embeds"),
        ("POST", "/channels/1/messages", {}, {"content": "a", "nonce": "123"}, None),
        ("POST", "/channels/1/messages", {}, {"content": "a", "flags": "64"}, None),
        ("POST", "/channels/1/messages", {}, {"components": button_row("")}, "custom_id"),
        ("POST", "/interactions/1/tok/callback", {}, {"type": 4, "data": {}}, None),
        (
            "POST",
            "/interactions/1/tok/callback",
            {},
            {"type": 8, "data": {"choices": [{"name": "a", "value": "a"}] * 26}},
            "data.choices: Must be 25 or fewer in length.",
        ),
        ("PATCH", "/webhooks/1/tok/messages/@original", {}, {"content": "x"}, None),
        ("DELETE", "/channels/1/messages/2", {}, None, None),
    ],
)
def test_spec_validator(
    method: str, path: str, query: dict[str, str], body: Any, problem: str | None
) -> None:
    found = [str(v) for v in spec_validator().check(method, path, query, body)]
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found
