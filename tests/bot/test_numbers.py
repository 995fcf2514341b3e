"""Phone numbers in any usual format: allowlist keys and `From` values meet in E.164."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings
from bot.sms.numbers import caller, normalise
from tests.bot.appserver import message_of, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "written, region, e164",
    [
        pytest.param("+15551230001", None, "+15551230001", id="e164"),
        pytest.param("+1 555 123 0001", None, "+15551230001", id="spaced"),
        pytest.param("+1 (555) 123-0001", None, "+15551230001", id="brackets-and-dash"),
        pytest.param("(555) 123-0001", "US", "+15551230001", id="national-with-region"),
        pytest.param("555.123.0001", "US", "+15551230001", id="dotted"),
        pytest.param("00 44 20 7946 0958", None, "+442079460958", id="double-zero"),
        pytest.param("00 44 20 7946 0958", "US", "+442079460958", id="double-zero-from-the-us"),
        pytest.param("011 44 20 7946 0958", "US", "+442079460958", id="us-exit-code"),
        pytest.param("+44 (0)20 7946 0958", None, "+442079460958", id="uk-trunk-zero"),
        pytest.param("020 7946 0958", "GB", "+442079460958", id="uk-national"),
        pytest.param("(555) 123-0001", None, None, id="national-without-region"),
        pytest.param("+1555", None, None, id="too-short"),
        pytest.param("alice", None, None, id="a-name"),
        pytest.param("+1 555 123 0001 ext 2", None, None, id="letters"),
    ],
)
def test_normalise(written: str, region: str | None, e164: str | None) -> None:
    assert normalise(written, region) == e164


@pytest.mark.parametrize(
    "sent, region, number",
    [
        pytest.param("+15550000000", None, "+15550000000", id="twilio-e164"),
        pytest.param(" 15550000000", None, "+15550000000", id="plus-decoded-as-space"),
        pytest.param(" 15550000000", "US", "+15550000000", id="plus-decoded-as-space-us"),
        pytest.param(" 447700900123", "US", "+447700900123", id="plus-decoded-abroad"),
        pytest.param("5551230001", "US", "+15551230001", id="typed-nationally"),
        pytest.param("whatsapp:+15551230001", None, "whatsapp:+15551230001", id="channel-address-as-sent"),
        pytest.param("'; DROP TABLE x; --", None, "'; DROP TABLE x; --", id="junk-as-sent"),
    ],
)
def test_caller(sent: str, region: str | None, number: str) -> None:
    assert caller(sent, region) == number


def users(*keys: str, region: str | None = None) -> dict[str, str]:
    environ = {"OPERATOR_USERS": json.dumps({key: {"name": f"u{n}"} for n, key in enumerate(keys)})}
    if region:
        environ["OPERATOR_DEFAULT_REGION"] = region
    settings = load_settings(environ=environ, env_file=None)
    return {number: user.name for number, user in settings.users.items()}


def test_allowlist_keys_in_any_usual_format() -> None:
    assert users("+1 555 123 0001", "(555) 123-0002", "00 44 20 7946 0958", region="us") == {
        "+15551230001": "u0", "+15551230002": "u1", "+442079460958": "u2"}  # fmt: skip


@pytest.mark.parametrize(
    "keys, region, message",
    [
        (("+15551230001", "+1 555 0"), None, "users: entry 2 is not a phone number"),
        (("(555) 123-0002",), None, "users: entry 1 is not a phone number (without a + and country code it needs "
                                    "default_region, e.g. US)"),
        (("+15551230001", "alice"), None, "users: entry 2 is not a phone number"),
        (("+15551230001", "+1 (555) 123-0001"), None, "users: entries 1 and 2 are the same number"),
    ],
)  # fmt: skip
def test_a_key_that_is_no_number_is_refused_by_position(
    keys: tuple[str, ...], region: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        users(*keys, region=region)
    assert str(caught.value) == f"invalid configuration: {message}"
    assert "555 0" not in str(caught.value) and "alice" not in str(caught.value)


def test_an_unknown_region_is_refused() -> None:
    with pytest.raises(ConfigError, match="default_region: not a region code"):
        load_settings(environ={"OPERATOR_DEFAULT_REGION": "Narnia"}, env_file=None)


async def test_a_text_from_a_key_written_nationally_is_answered(tmp_path: Path) -> None:
    config = 'default_region: US\nusers: {"(555) 777-0001": {name: carol, role: operator}}\n'
    async with serve(settings_for(tmp_path, config)) as bot:
        assert message_of(await bot.text("help", number="+15557770001"))


async def test_dev_mode_answers_the_plus_a_form_body_turned_into_a_space(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"OPERATOR_DEV_MODE": "true", "OPERATOR_HISTORY_PATH": str(tmp_path / "h.sqlite3")}, env_file=None
    )
    async with serve(settings) as bot:
        response = await bot.client.post(
            f"{bot.url}/sms", content=b"From=+15550000000&Body=help",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
    assert response.status_code == 200 and message_of(response).startswith("Ask in your own words")
