"""No request of any shape yields a 500 or a reply to a number not on the allowlist.

Hypothesis throws form bodies at the webhook (signed and unsigned), and schemathesis walks the
app's own OpenAPI schema; both against the real app served by uvicorn on loopback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.web.app import create_app
from tests.bot.appserver import ALICE, STRANGER, settings_for, sign
from tests.examples import examples
from tests.servers import free_port

KEYS = ["From", "Body", "MessageSid", "To", "AccountSid", "NumMedia", "MediaUrl0", "Sid", "x", ""]
VALUES = st.one_of(
    st.text(max_size=300),
    st.sampled_from([ALICE, STRANGER, "", "+", "status", "more", "STOP", "Y 4821", "silence HighCPU 1h", "\x00"]),
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(settings_for(tmp_path_factory.mktemp("fuzz"), "rate_burst: 100000\nrate_per_minute: 100000\n"
                                  "global_rate_per_minute: 1000000\n"))  # fmt: skip
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, trust_env=False, timeout=20) as http:
        yield http


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=20), VALUES), max_size=12), signed=st.booleans()
)
def test_form_bodies_never_500_and_strangers_get_nothing(client: httpx.Client, pairs: list[tuple[str, str]],
                                                         signed: bool) -> None:  # fmt: skip
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signed:
        headers["X-Twilio-Signature"] = sign(pairs)
    response = client.post("/sms", content=urlencode(pairs), headers=headers)
    assert response.status_code in (200, 400, 403, 413), response.text
    if response.status_code == 200:
        sender = dict(pairs).get("From", "").strip()
        if sender != ALICE:
            assert "<Message" not in response.text


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=2000),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "text/plain", "application/json", "multipart/form-data", ""]
    ),
)
def test_raw_bytes_never_500(client: httpx.Client, raw: bytes, content_type: str) -> None:  # fmt: skip
    response = client.post("/sms", content=raw, headers={"Content-Type": content_type})
    assert response.status_code < 500


def test_openapi_schema_walk_finds_no_500(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/sms"), ("GET", "/readyz")}
    for op in operations:

        @settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path}: {response.status_code}")

        check()
    assert not failures, failures
