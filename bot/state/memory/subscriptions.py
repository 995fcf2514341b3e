"""Alert subscriptions for the terminal and tests: choices last as long as the process."""

from __future__ import annotations

from bot.sms.privacy import number_key


class InMemorySubscriptions:
    """For the terminal and tests: choices last as long as the process."""

    def __init__(self) -> None:
        self._choices: dict[str, bool] = {}

    async def is_subscribed(self, number: str, default: bool) -> bool:
        return self._choices.get(number_key(number), default)

    async def set(self, number: str, subscribed: bool) -> None:
        self._choices[number_key(number)] = subscribed
