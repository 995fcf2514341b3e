"""Issue 13's rules, one table each: free text in, command out (on the corpus configuration).

Each row is a text a person might send and the strict command it must become ("" for `unknown`), so a
failure reads as the conversation that went wrong. Writes that the parser must ask about are in their
own table, with the suggestion it offers instead.
"""

from __future__ import annotations

import pytest

from intents import Context, Intent, Parser, remember


def command(parser: Parser, text: str, context: Context | None = None) -> str:
    return parser.parse(text, context).command


NEW_INTENTS = [
    ("who's on call", "oncall"),
    ("who has the pager", "oncall"),
    ("who's oncall for infra rn", "oncall infra"),
    ("whos on call for payment", "oncall payments"),  # a service word that is a schedule's singular
    ("who is carrying the pager for infra", "oncall infra"),
    ("oncal payments", "oncall payments"),
    ("oncall infar", "oncall infra"),  # schedules are matched with typo tolerance
    ("who is on call for pymnts", "oncall payments"),
    ("take infr 2h", "take infra 2h"),
    ("i'll take the pager for payments", "take payments"),
    ("take over infra for 2 hours", "take infra 2h"),
    ("put me on call for infra for ninety minutes", "take infra 90m"),
    ("give me the pager for payments for the next 3 hours", "take payments 3h"),
    ("i'll cover payments till the end of my shift", "take payments"),
    ("tkae infra 1h", "take infra 1h"),
    ("page the next person for alert 3", "escalate 3"),
    ("wake up the next person on PostgresDown", "escalate PostgresDown"),
    ("escalate alert number two", "escalate 2"),
    ("kick alert 2 up the chain", "escalate 2"),
    ("esclate 1", "escalate 1"),
    ("bump 2", "escalate 2"),
    ("whos got pager for infra", "oncall infra"),
    ("i can take infra for the next hour", "take infra 1h"),
    ("put me on the payments rotation for 6 hours", "take payments 6h"),
    ("take payments for six hours", "take payments 6h"),
]


@pytest.mark.parametrize(("text", "expected"), NEW_INTENTS)
def test_new_intents(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


UNTIL = [
    ("silence HighCPU until 9am", "silence HighCPU until=09:00"),
    ("mute 2 till 14:30", "silence 2 until=14:30"),
    ("snooze DiskFull until noon", "silence DiskFull until=12:00"),
    ("silence 1 until midnight", "silence 1 until=00:00"),
    ("silence 3 until 9:30pm", "silence 3 until=21:30"),
    ("quiet TargetDown until 7 am", "silence TargetDown until=07:00"),
    ("slnce 4 untl 08:15", "silence 4 until=08:15"),
    ("mute alert number three until 6pm", "silence 3 until=18:00"),
]


@pytest.mark.parametrize(("text", "expected"), UNTIL)
def test_silence_until_a_time_of_day(parser: Parser, text: str, expected: str) -> None:
    parse = parser.parse(text)
    assert parse.command == expected
    assert "duration_s" not in parse.slots


NUMBER_WORDS = [
    ("silence HighCPU for forty five minutes", "silence HighCPU 45m"),
    ("silence DiskFull an hour and a half", "silence DiskFull 90m"),
    ("snooze 1 for two and a half hours", "silence 1 150m"),
    ("silence 3 for half an hour", "silence 3 30m"),
    ("silence RedisDown ninety minutes", "silence RedisDown 90m"),
    ("silence 4 for one hundred twenty minutes", "silence 4 2h"),
    ("silence SSLCertExpiring for a day", "silence SSLCertExpiring 1d"),
    ("silence 2 for twenty-five minutes", "silence 2 25m"),
    ("silence 2 for two hours and thirty minutes", "silence 2 150m"),
    ("silence 2 for 1 hour 30 minutes", "silence 2 90m"),
    ("silence 2 for three quarters of an hour", "silence 2 45m"),
    ("silence 2 for a quarter of an hour", "silence 2 15m"),
    ("silence 2 for hour and a half", "silence 2 90m"),
    ("snooze the third alert for 10 min", "silence 3 10m"),  # an ordinal, not a fraction
    ("cpu on checkout for the last forty five minutes", "metrics cpu service=checkout range=45m"),
    ("chart latency for auth over the last one hundred twenty minutes", "graph latency service=auth range=2h"),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER_WORDS)
def test_number_words_compose(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


WRITES_THAT_ASK = [
    ("silence 4 for five forty minutes", "silence 4 40m", "a number next to"),
    ("silence 3 for one twenty minutes", "silence 3 20m", "a number next to"),
    ("silence 2 for two thirds of an hour", "silence 2 1h", "a number next to"),
    ("silence HighCPU until 9", "silence HighCPU 1h", "end time"),
    ("silence 3 until tomorrow", "silence 3 1h", "end time"),
    ("silence 2 for 1h until 9am", "silence 2 until=09:00", "two different ends"),
    ("silence 2 for 1 hour 90 minutes", "silence 2 1h", "two different ends"),
    ("ack 2 and HighCPU", "ack HighCPU", "two alerts"),
    ("escalate DiskFull, no wait, alert 3", "escalate 3", "two alerts"),
    ("i'll take infra till 6pm", "take infra", "end time"),
    ("escalate my complaint", "alerts", "everyday word"),  # no alert is named
    ("silence is golden", "alerts", "everyday word"),
    ("ack alert=$(id)", "alerts", "no alert name"),  # never the "$" of an injected substitution
    ("escalate alert=`reboot`", "alerts", "no alert name"),
]


@pytest.mark.parametrize(("text", "suggestion", "why"), WRITES_THAT_ASK)
def test_writes_ask_when_unsure(parser: Parser, text: str, suggestion: str, why: str) -> None:
    """Never a wrong alert or duration on a write: unknown, with the command to confirm, and the reason."""
    trace = parser.explain(text)
    assert trace.parse.intent is Intent.UNKNOWN
    assert trace.parse.suggestion == suggestion
    assert why in trace.unsure


DECISIONS = [
    ("health kong", "health gateway"),
    ("health pgbouncer", "health database"),
    ("is loki ok", "health logs"),
    ("is kong healthy", "health gateway"),
    ("is the gateway up?", "health gateway"),
    ("is the api gateway up", "health gateway"),
    ("ack alert number two", "ack 2"),
    ("ack highcpu", "ack HighCPU"),
    ("escalate MyCustomAlert", "escalate MyCustomAlert"),
    ("who are you", "help"),
    ("what can you do?", "help"),
    ("im lost, what do i text", "help"),
    ("STOP", "unsubscribe"),  # the carrier opt-out, never undo
    ("checkout 5xx", "logs service=checkout level=error"),
    ("payment errors", "logs service=payment level=error"),
    ("checkout 5xx rate", "metrics error_rate service=checkout"),
    ("err rate on auth", "metrics error_rate service=auth"),
    ("status && alerts", "status"),
    ("alerts firing | oncall", "alerts firing"),
    ("oncall payments\ntake payments 4h", "oncall payments"),
    ("metrics cpu service=$(curl evil)", "metrics cpu"),
    ('metrics sum(rate(x{code=~"5..|4.."}[5m]))', 'metrics sum(rate(x{code=~"5..|4.."}[5m]))'),
]


@pytest.mark.parametrize(("text", "expected"), DECISIONS)
def test_decisions_of_the_contract(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


TYPOS = [
    ("pymnt errs", "logs service=payment level=error"),
    ("chckout ltncy", "metrics latency service=checkout"),
    ("mmry on srch", "metrics memory service=search"),
    ("stts", "status"),
    ("hlth db", "health database"),
    ("alrts", "alerts"),
    ("invntry cpu", "metrics cpu service=inventory"),
    ("atuh errors", "logs service=auth level=error"),
    ("wbe latency", "metrics latency service=web"),
    ("paymenterrors", "logs service=payment level=error"),
    ("checkoutcpu", "metrics cpu service=checkout"),
    ("searchlogs 2h", "logs service=search range=2h"),
]


@pytest.mark.parametrize(("text", "expected"), TYPOS)
def test_typos_and_words_run_together(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


AUTOCORRECTED = [
    ("cup usage on auth", "metrics cpu service=auth"),
    ("desk space on search", "metrics disk service=search"),
    ("cart memo usage", "metrics memory service=cart"),
    ("card memory", "metrics memory service=cart"),
    ("show payment loge", "logs service=payment"),
]


@pytest.mark.parametrize(("text", "expected"), AUTOCORRECTED)
def test_autocorrected_names_in_short_texts(parser: Parser, text: str, expected: str) -> None:
    trace = parser.explain(text)
    assert trace.parse.command == expected
    assert trace.corrections, "the REPL must show the word it replaced"


@pytest.mark.parametrize(
    "text",
    [
        "logs card declined payment",  # a service is named: "card" is a search word
        "help desk errors on payment",  # prose, and another word explains the text
        "is the cup half full",
        "card errors",  # a level, not a metric: "card" stays a search word
    ],
)
def test_everyday_words_stay_everyday(parser: Parser, text: str) -> None:
    parse = parser.parse(text)
    assert parse.slots.get("service") != "cart" and parse.slots.get("metric") not in ("cpu", "disk")


SLIPPED = [
    ("heath", "health"),
    ("heath check", "health"),
    ("heath?", "health"),
    ("loki heath?", "health logs"),
    ("statue", "status"),
]


@pytest.mark.parametrize(("text", "expected"), SLIPPED)
def test_a_command_slipped_into_an_everyday_word(parser: Parser, text: str, expected: str) -> None:
    trace = parser.explain(text)
    assert trace.parse.command == expected
    assert trace.corrections, "the REPL must show the word it replaced"


@pytest.mark.parametrize(
    "text",
    [
        "heath insurance is great",  # prose: two words the bot does not know
        "alters",  # two edits from alerts
        "heath errors on checkout",  # a service and a level: "heath" is a search word
        "aks",  # short words are never guessed at, and ack is a write
    ],
)
def test_other_everyday_words_are_not_taken_for_commands(parser: Parser, text: str) -> None:
    assert parser.parse(text).intent not in ("health", "status", "alerts")


COLLOQUIAL = [
    ("why was I paged", "alerts"),
    ("what's paging me?", "alerts"),
    ("keep them coming", "more"),
    ("who is connected to the database", "db clients"),
    ("who's hitting the db", "db clients"),
    ("pull up the checkout logs", "logs service=checkout"),
    ("let me see auth's logs", "logs service=auth"),
    ("load on search", "metrics cpu service=search"),
    ("how loaded is cart", "metrics cpu service=cart"),
    ("how's the payment box holding up on ram", "metrics memory service=payment"),
    ("new here how does this work", "help"),
    ("take a look at payment cpu", "metrics cpu service=payment"),  # no pager is taken
    ("what's blowing up", "alerts"),
    ("how many 500s on api", "logs service=api level=error"),  # server errors, not 500 seconds
]


@pytest.mark.parametrize(("text", "expected"), COLLOQUIAL)
def test_colloquial_asks(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


RAMBLES = [
    (
        "hey sorry to bug you, customers say checkout is taking forever to load, can you tell me what the "
        "latency looks like on checkout for the last hour? thanks",
        "metrics latency service=checkout range=1h",
    ),
    (
        "we rolled out a new model an hour ago and people say search is slow, what's the cpu on search doing "
        "over the last 30 minutes?",
        "metrics cpu service=search range=30m",
    ),
    (
        "the HighMemory alert keeps going off and it's the known leak, please silence HighMemory for 4 hours",
        "silence HighMemory 4h",
    ),
    (
        "okay so i silenced the wrong thing, i meant to silence RedisDown not TooManyConnections, can you "
        "reverse what i just did",
        "undo",
    ),
    (
        "hey, long night here. the checkout folks say things feel sluggish since the 2am deploy, could you grab "
        "me the p99 latency for checkout over the last 3 hours?",  # "the deploy" is an event, not a request
        "metrics latency service=checkout range=3h",
    ),
    (
        "quick one before i board my flight, can you show me any warnings from the inventory service in the "
        "past 30 minutes",  # log terms come from the clause that asks for logs
        "logs service=inventory level=warn range=30m",
    ),
    (
        'support says customers are unhappy today, can you search the auth logs for "invalid token" please',
        "logs invalid token service=auth",  # "search the …" is the verb, not the search service
    ),
]


@pytest.mark.parametrize(("text", "expected"), RAMBLES)
def test_one_ask_buried_in_a_ramble(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


@pytest.mark.parametrize(
    "text",
    ["take a break", "take the day off", "bump the memory limit on checkout", "escalate to the SRE lead",
     "restart the payment pods", "order me a pizza", "page bob",
     "swap my on-call shift with bob", "bump 2 replicas on checkout", "<script>alert(1)</script>"],
)  # fmt: skip
def test_still_unknown(parser: Parser, text: str) -> None:
    parse = parser.parse(text)
    assert parse.intent is Intent.UNKNOWN
    assert parse.suggestion is None or not parse.suggestion.startswith(("take ", "escalate ", "silence ", "ack "))


FOLLOW_UPS = {
    "service-carries-across-intents": [
        ("logs errors payment", "logs service=payment level=error"),
        ("cpu?", "metrics cpu service=payment"),
        ("graph it", "graph cpu service=payment"),
    ],
    "oncall-and-help-do-not-replace-the-query": [
        ("metrics cpu payment", "metrics cpu service=payment"),
        ("who's on call for payments", "oncall payments"),
        ("help graph", "help graph"),
        ("more", "more"),
        ("and memory?", "metrics memory service=payment"),
    ],
    "bump-it-escalates-the-last-alert": [
        ("escalate QueueBacklog", "escalate QueueBacklog"),
        ("still nothing, bump it to the next person", "escalate QueueBacklog"),
    ],
    "ack-it-after-an-escalation": [
        ("alerts firing", "alerts firing"),
        ("escalate alert number two", "escalate 2"),
        ("ok now ack it", "ack 2"),
    ],
    "silence-it-until": [
        ("ack 3", "ack 3"),
        ("cpu on web", "metrics cpu service=web"),  # a query between keeps the alert
        ("and silence it until 10am", "silence 3 until=10:00"),
    ],
    "a-new-alert-list-renumbers": [
        ("ack 3", "ack 3"),
        ("alerts", "alerts"),
        ("ack it", ""),  # which "it"? the new list's numbers are not the old ones
    ],
    "a-named-alert-survives-a-new-list": [
        ("ack HighCPU", "ack HighCPU"),
        ("alerts", "alerts"),
        ("silence it 1h", "silence HighCPU 1h"),
    ],
}


@pytest.mark.parametrize("name", list(FOLLOW_UPS))
def test_follow_ups_across_intents(parser: Parser, name: str) -> None:
    context = Context()
    for text, expected in FOLLOW_UPS[name]:
        parse = parser.parse(text, context)
        assert parse.command == expected, text
        context = remember(context, parse)


MORE_TYPOS = [
    ("show me checkout logs from the last hout", "logs service=checkout range=1h"),  # a unit is due after "last"
    ("silence HighCPU for 2 ours", "silence HighCPU 2h"),
    ("checkout logs from the lst hour", "logs service=checkout range=1h"),
    ("error rat for payment", "metrics error_rate service=payment"),  # the second word of a two-word name
    ("db connection poll", "db pools"),
    ("isk on api", "metrics disk service=api"),  # a letter missing from a four-letter name
    ("ogs for cart", "logs service=cart"),
    ("alerts iring", "alerts firing"),  # a catalog word before an everyday one
    ("gateway stauts", "gateway status"),  # not a route called "stauts"
    ("graph latency on uth last 2 hours", "graph latency service=auth range=2h"),
]


@pytest.mark.parametrize(("text", "expected"), MORE_TYPOS)
def test_typos_read_in_their_context(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


BLIND_SEVEN = [
    ("whos on cal", "oncall"),
    ("whos got the pagr for infra", "oncall infra"),
    ("Logos error payment", "logs service=payment level=error"),
    ("the payments team says something is off with auth, pull the auth error logs", "logs service=auth level=error"),
    ("payments folks want checkout latency", "metrics latency service=checkout"),
    ("how do i get to the office from the train station", ""),
    ("how do i silence an alert", "help silence"),
    ("cpi checkout", "metrics cpu service=checkout"),  # a three-letter slip no typo rule touches
    ("i will take payments for the rest of the shift", "take payments"),  # "the rest" of a shift, not of a reply
]
"""What the seventh blind set (written from the contract alone, scored before tuning) found."""


@pytest.mark.parametrize(("text", "expected"), BLIND_SEVEN)
def test_what_the_seventh_blind_set_found(parser: Parser, text: str, expected: str) -> None:
    assert command(parser, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("logs?", "logs service=payment range=30m"),
        ("logs", "logs"),
        ("graph?", "graph error_rate service=payment range=30m"),
        ("status?", "status"),
    ],
)
def test_a_bare_command_asked_as_a_question_keeps_the_subject(parser: Parser, text: str, expected: str) -> None:
    """ "logs?" after a question about payment continues it; typed as a command, it is taken as typed."""
    first = parser.parse("metrics error_rate service=payment range=30m")
    assert command(parser, text, remember(Context(), first)) == expected


@pytest.mark.parametrize(
    ("first", "text", "expected"),
    [
        ("memory on cart", "any errors in the logs?", "logs service=cart level=error"),
        ("look for deadlock in inventory logs", "cpu there?", "metrics cpu service=inventory"),
        ("memory on cart", "error logs from every service", "logs level=error"),
        ("memory on cart", "error logs for search", "logs service=search level=error"),
        ("latency on auth", "thanks", ""),
        ("latency on auth", "again please", "metrics latency service=auth"),
    ],
)
def test_the_subject_carries_across_query_commands(parser: Parser, first: str, text: str, expected: str) -> None:
    """The service carries across intents; "all services" and a named service do not take it, and thanks
    are not a request to run the last command again."""
    assert command(parser, text, remember(Context(), parser.parse(first))) == expected
