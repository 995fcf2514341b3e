"""Where a rendered chart waits for Twilio to fetch it for an MMS.

A picture is served at `/media/{token}.png` under the public URL, with no login (Twilio fetches it anonymously),
so the token is the only lock: 256 random bits, good for `media_ttl_s`. The route checks a token's shape with
`valid_token` before it touches a store, so a probe for `../../etc/passwd` or a 10 MB path costs nothing.
In memory by default; a shared store (Redis) implements `MediaStore` for several instances.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

Clock = Callable[[], float]

TOKEN_BYTES = 32
"""256 bits: a token cannot be guessed within its lifetime, however many requests an attacker makes."""
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""What `secrets.token_urlsafe(32)` returns: 43 characters of the URL-safe base64 alphabet, no padding."""
MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
"""What a store keeps: the picture types Twilio sends as MMS everywhere. Nothing a browser would run as a page."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(token: object) -> bool:
    """Whether `token` could have come from `new_token` (checked before any store is asked)."""
    return isinstance(token, str) and TOKEN_PATTERN.fullmatch(token) is not None


def media_url(public_url: str, token: str) -> str:
    """The URL Twilio fetches the picture from (the `MediaUrl` of the MMS)."""
    return f"{public_url.rstrip('/')}/media/{token}.png"


def check_media(data: bytes, content_type: str) -> None:
    """Raises ValueError for what no store should keep: nothing at all, or a type outside `MEDIA_TYPES`."""
    if not data:
        raise ValueError("media is empty")
    if content_type not in MEDIA_TYPES:
        raise ValueError(f"media type must be one of {sorted(MEDIA_TYPES)}")
