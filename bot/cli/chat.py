"""`operator chat`: a whole conversation in the terminal, through the same path as an SMS
(parse, context, command, then the same SMS finishing: GSM-7, the context note, pages and "more").

From a pipe it reads one text per line and prints each reply followed by a line holding only
`---`, so scripts can drive it. One event loop serves the whole session.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import IO

from bot.core.conversation import SOMETHING_WENT_WRONG, Conversation
from bot.core.roles import role_of
from bot.core.runtime import open_runtime
from bot.settings import Settings
from bot.sms.replies import SmsReplies

SEPARATOR = "---"
log = logging.getLogger(__name__)


async def chat(
    conversation: Conversation, replies: SmsReplies, settings: Settings, user: str, stdin: IO[str], stdout: IO[str]
) -> None:
    role = role_of(settings, user)
    interactive = stdin.isatty()
    if interactive:
        print(f"Texting Operator as {user} ({role or 'not on the allowlist'}). Ctrl-D to leave.", file=stdout)
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        text = line.rstrip("\n")
        if role is None:
            reply = "(this number is not on the allowlist: the SMS service sends no reply)"
        else:
            try:
                reply = await replies.finish(user, await conversation.reply(user, text, role))
            except Exception as exc:  # the outermost loop: one bad text must not end the session
                log.error("reply failed: %s", type(exc).__name__)  # no traceback: it may quote the text
                reply = SOMETHING_WENT_WRONG
        print(reply, file=stdout)
        if not interactive:
            print(SEPARATOR, file=stdout)
        stdout.flush()


async def _session(settings: Settings, user: str) -> None:
    async with open_runtime(settings, media=False) as runtime:
        assert runtime.services.pages is not None
        replies = SmsReplies(runtime.services.pages, settings.max_segments, settings.allow_emoji)
        await chat(runtime.conversation, replies, settings, user, sys.stdin, sys.stdout)


def run_chat(settings: Settings, user: str) -> None:
    """One event loop and one set of shared resources for the whole terminal session."""
    asyncio.run(_session(settings, user))
