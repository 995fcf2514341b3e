"""The shared client's TLS: verified against the CA bundle httpx itself uses, loaded once per process."""

from __future__ import annotations

import ssl

import certifi
import pytest

from monitors.http import new_client, tls_context

pytestmark = pytest.mark.anyio


def test_the_context_verifies_hosts_and_certificates_like_httpx() -> None:
    context = tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    reference = ssl.create_default_context(cafile=certifi.where())
    assert context.cert_store_stats() == reference.cert_store_stats()  # the same bundle, not the system's


async def test_every_client_shares_the_one_context() -> None:
    async with new_client() as first, new_client() as second:
        contexts = [c._transport._pool._ssl_context for c in (first, second)]  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1] is tls_context()
