"""What an on-call call says: the alert in a few words, then one key (4 acknowledge, 6 silence for one
hour, 9 escalate now), asked twice; then what came of it.

    <Response>
      <Gather numDigits="1" timeout="8" action="…/twilio/voice/gather?t=…" method="POST"><Say>…</Say></Gather>
      <Gather …the same…><Say>…</Say></Gather>
      <Say>No key was pressed. Paging goes on. Goodbye.</Say>
    </Response>

Twilio reads the `<Gather>`; a key posts it to the action URL (whose answer is the result, spoken, then
`<Hangup/>`), no key within the timeout falls through to the next verb, which is the same question once
more, and then the goodbye. Written directly, like the SMS TwiML (`bot.web.twiml`): a fixed shape, every
value escaped, and what the alert says cleaned like its text (no links, no controls).
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from bot.alerting.model import AlertEvent
from bot.alerting.texts import WHERE_LABELS, clean

KEYS = "Press 4 to acknowledge, 6 to silence for one hour, 9 to escalate now."
NO_KEY = "No key was pressed. Paging goes on. Goodbye."
GATHER_TIMEOUT_S = 8
SPOKEN_LIMIT = 240
"""Characters of alert description read out: about fifteen seconds of speech."""
_HEAD = '<?xml version="1.0" encoding="UTF-8"?><Response>'


def spoken(alerts: Sequence[AlertEvent]) -> str:
    """ "Operator page. Critical: DiskFull on db1:9100. Disk 97% full." (or how many, and the first names)."""
    if not alerts:
        return "Operator page. The alert has ended."
    first = alerts[0]
    severity = max(a.severity for a in alerts).name.lower()
    if len(alerts) == 1:
        where = next((clean(first.labels[k], 30) for k in WHERE_LABELS if first.labels.get(k, "").strip()), "")
        text = f"Operator page. {severity.capitalize()}: {clean(first.name, 40)}" + (f" on {where}" if where else "")
        summary = clean(first.summary, 80).rstrip(".")
        return (f"{text}. {summary}." if summary else f"{text}.")[:SPOKEN_LIMIT]
    names = list(dict.fromkeys(clean(a.name, 40) for a in alerts))
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"Operator page. {len(alerts)} alerts, {severity}: {shown}."[:SPOKEN_LIMIT]


def _say(text: str) -> str:
    return f"<Say>{escape(text)}</Say>"


def call_twiml(text: str, action_url: str) -> str:
    """The call's TwiML: `text` and the keys, gathered twice, then the goodbye."""
    gather = (f'<Gather numDigits="1" timeout="{GATHER_TIMEOUT_S}" action={quoteattr(action_url)} method="POST">'
              f"{_say(f'{text} {KEYS}')}</Gather>")  # fmt: skip
    return f"{_HEAD}{gather}{gather}{_say(NO_KEY)}</Response>"


def result_twiml(text: str) -> str:
    """What came of a key press, then the end of the call."""
    return f"{_HEAD}{_say(text)}<Hangup/></Response>"


def ask_again_twiml(action_url: str) -> str:
    """A key that does nothing: say so and ask once more."""
    gather = (f'<Gather numDigits="1" timeout="{GATHER_TIMEOUT_S}" action={quoteattr(action_url)} method="POST">'
              f"{_say(f'That key does nothing. {KEYS}')}</Gather>")  # fmt: skip
    return f"{_HEAD}{gather}{_say(NO_KEY)}</Response>"
