"""Charts waiting for Twilio in Redis, so whichever instance Twilio reaches serves them."""

from __future__ import annotations

import base64

from redis.asyncio import Redis

from bot.charts.media import check_media, new_token, valid_token
from bot.state.redis.client import DEFAULT_PREFIX, guarded, ms, text_of


class RedisMediaStore:
    """Rendered charts, for whichever instance Twilio's fetch of `/media/{token}.png` reaches.

    Kept as "content type, newline, base64": the client decodes replies as text (every other store is
    text), and a 60 KiB chart costs 80 KiB for its few minutes. Capped at `max_bytes` per item.
    """

    def __init__(
        self, client: Redis, ttl_s: float, *, max_bytes: int = 2 * 2**20, prefix: str = DEFAULT_PREFIX
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0:
            raise ValueError("ttl_s and max_bytes must be positive")
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._client = client
        self._prefix = f"{prefix}media:"

    @guarded
    async def put(self, data: bytes, content_type: str = "image/png") -> str:
        """On StoreUnavailable: the chart cannot be served; the caller sends the text version instead."""
        check_media(data, content_type)
        if len(data) > self.max_bytes:
            raise ValueError(f"media larger than {self.max_bytes} bytes")
        token = new_token()
        value = f"{content_type}\n{base64.b64encode(data).decode('ascii')}"
        await self._client.set(self._prefix + token, value, px=ms(self.ttl_s))
        return token

    @guarded
    async def get(self, token: str) -> tuple[bytes, str] | None:
        """On StoreUnavailable: the route answers 503, and Twilio retries the fetch."""
        if not valid_token(token):
            return None
        raw = await self._client.get(self._prefix + token)
        if raw is None:
            return None
        content_type, _, encoded = text_of(raw).partition("\n")
        try:
            return base64.b64decode(encoded, validate=True), content_type
        except ValueError:
            return None  # not written by this store
