"""Names, versions and ids from anywhere are bounded and matched whole (property tests)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from workflows.models import BOT_NAME, DeploymentInput, validate_bot_name, validate_version
from workflows.models import VERSION as VERSION_PATTERN

# The patterns themselves; what is tested is that only a whole match passes.
NAME, VERSION = BOT_NAME, VERSION_PATTERN


@given(st.text(max_size=300))
def test_a_bot_name_is_accepted_only_whole(text: str) -> None:
    try:
        assert validate_bot_name(text) == text
    except ValueError as error:
        assert NAME.fullmatch(text) is None
        assert len(str(error)) < 200
    else:
        assert NAME.fullmatch(text) is not None


@given(st.text(max_size=300) | st.from_regex(VERSION, fullmatch=True))
def test_a_version_is_accepted_only_whole(text: str) -> None:
    try:
        assert validate_version(text) == text
    except ValueError as error:
        assert VERSION.fullmatch(text) is None
        assert len(str(error)) < 200


@given(name=st.from_regex(NAME, fullmatch=True), suffix=st.sampled_from(["\n", " ", "\t", "\x00"]))
def test_trailing_whitespace_never_passes_from_other_clients(name: str, suffix: str) -> None:
    with pytest.raises(ValidationError):
        DeploymentInput.model_validate({"botName": name + suffix, "owner": "user-123"})
    with pytest.raises(ValidationError):
        DeploymentInput.model_validate(
            {"botName": name, "owner": "user-123", "version": "1.0.0" + suffix}
        )


@given(st.text(max_size=40))
def test_ids_from_other_clients_are_snowflakes_or_refused(text: str) -> None:
    try:
        request = DeploymentInput.model_validate({"botName": "echo", "owner": "1", "guildId": text})
    except ValidationError:
        return
    assert request.guild_id is not None and re.fullmatch(r"[1-9][0-9]{5,19}", request.guild_id)
