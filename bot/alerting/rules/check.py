"""`operator rules check`: what each rule of a file evaluates to now, against the live Prometheus."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.alerting.rules.engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    MAX_SHOWN_SERIES,
    for_each,
    reason,
)
from bot.alerting.rules.model import Evaluate, Rule, figure
from monitors.base import MetricResult, Monitor
from monitors.errors import BadBackendResponse, MonitorError
from monitors.formatting import number

# --- `operator rules check` -------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleCheck:
    """One rule evaluated now, for `operator rules check`."""

    rule: Rule
    series: tuple[tuple[Mapping[str, str], float], ...] = ()
    error: str | None = None
    """Why the query failed ("query rejected: …"), or None."""

    @property
    def holding(self) -> int:
        return sum(1 for _, value in self.series if self.rule.holds(value))

    def line(self) -> str:
        rule = self.rule
        if self.error is not None:
            return f"{rule.name}: {self.error}"
        if not self.series:
            return f"{rule.name}: {rule.condition()}: no data (does not hold)"
        shown = [
            f"{_series_name(labels)} = {figure(value) if math.isfinite(value) else number(value)}"
            f" ({'holds' if rule.holds(value) else 'does not hold'})"
            for labels, value in self.series[:MAX_SHOWN_SERIES]
        ]
        more = len(self.series) - MAX_SHOWN_SERIES
        tail = f" (+{more} more)" if more > 0 else ""
        count = f"{self.holding} of {len(self.series)} series hold"
        return f"{rule.name}: {rule.condition()}: {count}: {'; '.join(shown)}{tail}"


def _series_name(labels: Mapping[str, str]) -> str:
    """`name{job="x", service="y"}` as Prometheus writes a series; "value" for a bare scalar."""
    name = labels.get("__name__", "")
    rest = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()) if key != "__name__")
    return f"{name}{{{rest}}}" if rest else (name or "value")


async def check_results(
    rules: Sequence[Rule],
    evaluate: Evaluate,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[RuleCheck]:
    """Every rule evaluated once, in file order (the CLI can exit non-zero when any has an error)."""
    checks: dict[str, RuleCheck] = {}

    async def check(rule: Rule) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                answer = await evaluate(rule)
        except MonitorError as exc:
            checks[rule.name] = RuleCheck(rule, error=reason(exc))
            return
        except TimeoutError:
            checks[rule.name] = RuleCheck(rule, error=f"no answer within {timeout_s:g} s")
            return
        checks[rule.name] = RuleCheck(rule, tuple(answer))

    await for_each(rules, check, concurrency)
    return [checks[rule.name] for rule in rules]


async def check_rules(rules: Sequence[Rule], evaluate: Evaluate) -> str:
    """`operator rules check FILE`: one line per rule with what it evaluates to now, then a total."""
    return format_checks(await check_results(rules, evaluate))


def format_checks(checks: Sequence[RuleCheck]) -> str:
    """The text of `check_rules`, for a caller that also wants the results (to set an exit status)."""
    failed = sum(1 for check in checks if check.error is not None)
    holding = sum(1 for check in checks if check.error is None and check.holding)
    total = f"{len(checks)} rules: {holding} hold now, {failed} failed"
    return "\n".join([*(check.line() for check in checks), total])


def make_evaluator(prometheus: Monitor) -> Evaluate:
    """The engine's `evaluate` over a Prometheus monitor (best behind its `Guarded` breaker): the
    rule as an instant query, each sample as (labels, value)."""

    async def evaluate(rule: Rule) -> list[tuple[Mapping[str, str], float]]:
        result = await prometheus.query(rule.query())
        if not isinstance(result, MetricResult):
            raise BadBackendResponse(prometheus.display, "not a metric answer")
        return [(sample.labels, sample.value) for sample in result.samples]

    return evaluate
