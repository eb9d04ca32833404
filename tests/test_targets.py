"""The targets file: a stable user-facing format with precise error messages."""

from __future__ import annotations

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
