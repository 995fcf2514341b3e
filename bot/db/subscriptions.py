"""Who has asked for alert texts and who has asked to stop, kept across restarts.

An opt-out ("unsubscribe", STOP) must survive a restart, so the SQL store lives beside the audit
history (same database, its own table). Numbers are stored as SHA-256 digests: the store only ever
answers "is this allowlisted number subscribed?", it never needs to list numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.schema import SUBSCRIPTIONS
from bot.sms.privacy import number_key
from bot.state.protocols import SubscriptionsUnavailable


class SqlSubscriptions:
    """Choices in the history's database (its table made by the schema migrations, `bot.db.migrate`).

    Read from the database every time, never cached: with several instances, "unsubscribe" may be
    handled by one and the next alert sent by another, and a stale cache there would text someone who
    asked to stop. It is one primary-key read per recipient per alert text.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def is_subscribed(self, number: str, default: bool) -> bool:
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(SUBSCRIPTIONS.c.subscribed).where(
                    SUBSCRIPTIONS.c.number_key == number_key(number)))).first()  # fmt: skip
        except SQLAlchemyError as exc:
            raise SubscriptionsUnavailable("subscriptions cannot be read") from exc
        return default if row is None else bool(row[0])

    async def set(self, number: str, subscribed: bool) -> None:
        key = number_key(number)
        for attempt in range(2):  # two instances inserting the same new number at once: the loser updates
            try:
                async with self._engine.begin() as conn:
                    values = {"subscribed": subscribed, "updated_at": datetime.now(UTC)}
                    updated = await conn.execute(
                        SUBSCRIPTIONS.update().where(SUBSCRIPTIONS.c.number_key == key).values(**values)
                    )
                    if updated.rowcount == 0:
                        await conn.execute(SUBSCRIPTIONS.insert().values(number_key=key, **values))
                return
            except IntegrityError:
                if attempt:
                    raise SubscriptionsUnavailable("subscriptions cannot be written") from None
            except SQLAlchemyError as exc:
                raise SubscriptionsUnavailable("subscriptions cannot be written") from exc
