"""The targets file: a stable user-facing format with precise error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workflows.models import validate_version
from workflows.targets import TargetsError, UnknownTarget, load_targets

GOOD = """
[bots.echo]
command = ["{python}", "-m", "examples.echo_bot", "--release", "{version}"]
token_env = "ECHO_BOT_TOKEN"
health_url = "http://127.0.0.1:{port}/healthz"
commands = "commands.json"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_with_defaults(tmp_path: Path) -> None:
    targets = load_targets(write(tmp_path, GOOD))
    echo = targets.get("echo")
    assert (echo.type, echo.runtime, echo.strategy) == ("discord", "process", "replace")
    assert echo.commands == tmp_path.resolve() / "commands.json"
    command = echo.render_command(version="1.2.3", port=4000)
    assert command[1:] == ["-m", "examples.echo_bot", "--release", "1.2.3"]
    assert echo.render_health_url(port=4000) == "http://127.0.0.1:4000/healthz"


def test_repository_targets_file_is_valid() -> None:
    targets = load_targets(Path(__file__).parent.parent / "targets.toml")
    assert "echo" in targets.bots
    assert targets.get("echo").load_command_manifest()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[bots.Echo]\ncommand = ["x"]\ntoken_env = "T"\n',
            "bots.Echo.name: Bot name 'Echo' is not valid: use 1-32",
        ),
        ('[bots.echo]\ncommand = "python bot.py"\ntoken_env = "T"\n', "bots.echo.command"),
        ('[bots.echo]\ncommand = ["x"]\ntoken_env = "T"\ntype = "slack"\n', "bots.echo.type"),
        ('[bots.echo]\ncommand = ["x"]\ntoken_env = "T"\nruntime = "k8s"\n', "bots.echo.runtime"),
        ('[bots.echo]\ncommand = ["x"]\n', "exactly one of token_env or token_file"),
        ('[bots.echo]\ncommand = ["x"]\ntoken_env = "MY TOKEN"\n', "bots.echo.token_env"),
        ('[bots.echo]\ncommand = ["{verison}"]\ntoken_env = "T"\n', "unknown placeholder"),
        ('[bots.echo]\ncommand = ["x"]\ntoken_env = "T"\ncolour = 1\n', "bots.echo.colour"),
        ('[bots.echo]\ncommand = ["x"]\ntoken_env = "T"\nhealth_url = "ftp://x"\n', "health_url"),
        ('[bots.echo]\ntoken_env = "T"\n', "needs a command"),
        ('[bots.echo]\ntoken_env = "T"\nruntime = "docker"\n', "needs an image"),
        ('[bots.e]\ntoken_env = "T"\nruntime = "docker"\nimage = "x:{port}"\n', "placeholder"),
        ("[bots.echo\n", "not valid TOML"),
        ('[apps.echo]\ncommand = ["x"]\n', "unknown top-level key 'apps'"),
    ],
)
def test_bad_files_name_file_target_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TargetsError) as raised:
        load_targets(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_docker_target_image_takes_the_version(tmp_path: Path) -> None:
    text = '[bots.web]\nruntime = "docker"\nimage = "example/web:{version}"\ntoken_env = "T"\n'
    web = load_targets(write(tmp_path, text)).get("web")
    assert web.render_image(version="2.1.0") == "example/web:2.1.0"
    assert web.command == []


def test_missing_file_and_unknown_bot(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="targets file not found"):
        load_targets(tmp_path / "nope.toml")
    with pytest.raises(UnknownTarget) as unknown:
        load_targets(write(tmp_path, GOOD)).get("ghost")
    # Whoever asked may not see the other servers' bots: none is named.
    assert str(unknown.value) == (
        "Unknown bot 'ghost': no bot of that name is declared in the targets file."
    )


def test_bad_command_manifest_is_reported(tmp_path: Path) -> None:
    (tmp_path / "commands.json").write_text('{"name": "not a list"}', encoding="utf-8")
    echo = load_targets(write(tmp_path, GOOD)).get("echo")
    with pytest.raises(TargetsError, match="must be a JSON list"):
        echo.load_command_manifest()


@pytest.mark.parametrize("version", ["1.4.0", "v2.0.1-rc.1", "latest", "3", "1.2.3+build.5"])
def test_good_versions(version: str) -> None:
    assert validate_version(version) == version


@pytest.mark.parametrize("version", ["", "1.4.0; rm -rf /", "../../etc", "one.two", "1..2"])
def test_malformed_versions(version: str) -> None:
    with pytest.raises(ValueError, match="not well formed"):
        validate_version(version)


ENVIRONMENTS = """
[bots.echo]
command = ["{python}", "-m", "examples.echo_bot"]
token_env = "ECHO_BOT_TOKEN"
guilds = [222222222222222222]

[bots.echo.environments.staging]
token_env = "ECHO_STAGING_TOKEN"
guilds = [111111111111111111]

[bots.echo.environments.production]
approval = { role = "release-approvers", timeout = "30m" }
promote_from = "staging"
soak = "30m"
"""


def test_environments_override_the_bots_fields(tmp_path: Path) -> None:
    targets = load_targets(write(tmp_path, ENVIRONMENTS))
    assert sorted(targets.bots) == ["echo.production", "echo.staging"]
    staging, production = targets.resolve("echo", "staging"), targets.resolve("echo", "production")
    assert (staging.token_env, staging.guilds) == ("ECHO_STAGING_TOKEN", ["111111111111111111"])
    assert (production.token_env, production.guilds) == ("ECHO_BOT_TOKEN", ["222222222222222222"])
    assert production.approval is not None and production.approval.role == "release-approvers"
    assert (production.promote_from, production.soak, production.bot_name) == (
        "staging",
        1800.0,
        "echo",
    )
    assert targets.environments_of("echo") == ["production", "staging"]
    with pytest.raises(LookupError, match="several environments"):
        targets.get("echo")


def test_a_bots_only_or_default_environment_is_used_when_none_is_named(tmp_path: Path) -> None:
    only = ENVIRONMENTS.split("[bots.echo.environments.production]")[0]
    assert load_targets(write(tmp_path, only)).get("echo").name == "echo.staging"
    default = ENVIRONMENTS.replace("guilds = [2", 'default_environment = "production"\nguilds = [2')
    assert load_targets(write(tmp_path, default)).get("echo").name == "echo.production"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('promote_from = "staging"', 'promote_from = "qa"'), "production.promote_from: must name"),
        (('soak = "30m"', 'soak = "soon"'), "bots.echo.environments.production.soak: must be a"),
        (("[bots.echo.environments.staging]", "[bots.echo.environments.Stag]"), "Stag: Environ"),
        (('token_env = "ECHO_STAGING_TOKEN"', "token_env = 3"), "staging.token_env: "),
    ],
)
def test_environment_errors_name_the_environment_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(TargetsError, match=re.escape(expected)):
        load_targets(write(tmp_path, ENVIRONMENTS.replace(*change)))


def test_only_an_environment_takes_promotion_fields(tmp_path: Path) -> None:
    text = GOOD.replace("[bots.echo]", '[bots.echo]\nsoak = "1m"', 1)
    with pytest.raises(TargetsError, match=re.escape("bots.echo.soak: only an environment")):
        load_targets(write(tmp_path, text))
    named = GOOD.replace("[bots.echo]", '[bots.echo]\nenvironment = "staging"', 1)
    with pytest.raises(TargetsError, match=re.escape("bots.echo.environment: declare")):
        load_targets(write(tmp_path, named))
