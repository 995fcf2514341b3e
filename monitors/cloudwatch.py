"""CloudWatch: log search with FilterLogEvents and metrics with GetMetricData, through boto3.

Which log group holds a service's logs, and which namespace, metric and dimensions an alias means,
come from the config section; the service goes in as a dimension value or a search term, as data.
FilterLogEvents returns the oldest events first, so a search reads the range in slices, newest
slice first, and stops once it has enough lines; it says how many matched only when it read the
whole range to the end.
"""

from __future__ import annotations

import heapq
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitors.aws import AwsBackend, AwsConfig, ResourceNotFound, deadline
from monitors.base import (
    Health,
    Kind,
    LogLine,
    LogQuery,
    LogResult,
    MetricQuery,
    MetricResult,
    Query,
    Result,
    Sample,
    Series,
)
from monitors.errors import BackendAuthError, BackendError, BackendQueryError, BadBackendResponse
from monitors.formatting import safe
from monitors.logs_format import SCANNED_CHARS, format_logs, tidy
from monitors.metric_text import format_metric
from monitors.registry import BuildContext

INSTANT_WINDOW_S = 900
""""Now" is the latest datapoint of the last fifteen minutes (basic monitoring reports every 5)."""
MAX_POINTS = 120
PAGE_SIZE = 1000
MAX_PAGES = 5
"""FilterLogEvents pages read at most: enough for a recent window, bounded for a busy group."""
MAX_PATTERN = 1024
MAX_DIMENSION = 1024
LEVEL_TERMS = {"error": "ERROR", "warn": "WARN", "warning": "WARN", "info": "INFO", "debug": "DEBUG",
               "critical": "CRITICAL", "fatal": "FATAL"}  # fmt: skip
"""A level is searched as the word log lines carry (filter patterns are case-sensitive)."""

_LOG_GROUP = re.compile(r"[\w\-/.#]{1,512}")
_NAME = re.compile(r"[^\x00-\x1f]{1,255}")
_STAT = re.compile(r"Average|Sum|Minimum|Maximum|SampleCount|(p|tm|wm|tc|ts)\d{1,2}(\.\d{1,2})?")
_BARE_TERM = re.compile(r"\w+", re.ASCII)


class CloudWatchMetric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str
    metric: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    """Dimension name -> value; `{service}` in a value is the asked service (dropped when none is)."""
    stat: str = "Average"
    period_s: int = Field(60, ge=1)
    unit: Literal["%", "bytes", "s", "/s", ""] = ""
    """How replies print the values (after `scale`)."""
    scale: float = 1.0
    """Multiplies each value: 0.001 turns milliseconds into the seconds `unit: s` expects."""

    @field_validator("namespace", "metric")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-255 printable characters")
        return value

    @field_validator("stat")
    @classmethod
    def _statistic(cls, value: str) -> str:
        if not _STAT.fullmatch(value):
            raise ValueError("not a CloudWatch statistic (Average, Sum, Maximum, p99 ...)")
        return value

    @field_validator("period_s")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in (1, 5, 10, 30) and value % 60:
            raise ValueError("must be 1, 5, 10, 30 or a multiple of 60")
        return value


class CloudWatchConfig(AwsConfig):
    log_group: str | None = None
    """Where logs are searched when no service is named (or it has no group of its own)."""
    log_groups: dict[str, str] = Field(default_factory=dict)
    """Service -> its own log group."""
    metrics: dict[str, CloudWatchMetric] = Field(default_factory=dict)

    @field_validator("log_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not _LOG_GROUP.fullmatch(value):
            raise ValueError("not a log group name")
        return value

    @field_validator("log_groups")
    @classmethod
    def _groups(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(_LOG_GROUP.fullmatch(group) for group in value.values()):
            raise ValueError("not a log group name")
        return {service.lower(): group for service, group in value.items()}


def pattern_term(term: str) -> str:
    """One term of a filter pattern: bare when only letters, digits and underscores (as CloudWatch
    requires), else double-quoted with quotes and backslashes escaped, so it is only text."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in term).split())
    if _BARE_TERM.fullmatch(cleaned):
        return cleaned
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_pattern(terms: list[str]) -> str:
    pattern = " ".join(pattern_term(t) for t in terms if t.strip())
    if len(pattern) > MAX_PATTERN:
        raise BackendQueryError("CloudWatch", "search too long")
    return pattern


def metric_query(spec: CloudWatchMetric, service: str | None, period: int) -> dict[str, Any]:
    """One MetricDataQuery; a dimension that needs the service is left out when none is asked."""
    dimensions = []
    for name, value in spec.dimensions.items():
        if "{service}" in value and service is None:
            continue
        filled = value.replace("{service}", service or "")
        if not 0 < len(filled) <= MAX_DIMENSION:
            raise BackendQueryError("CloudWatch", "service name not usable as a dimension")
        dimensions.append({"Name": name, "Value": filled})
    metric = {"Namespace": spec.namespace, "MetricName": spec.metric, "Dimensions": dimensions}
    return {"Id": "m0", "MetricStat": {"Metric": metric, "Period": period, "Stat": spec.stat}, "ReturnData": True}


def period_for(spec: CloudWatchMetric, span_s: int) -> int:
    """The configured period, widened so a long range stays about `MAX_POINTS` points."""
    wanted = max(spec.period_s, math.ceil(span_s / MAX_POINTS))
    return wanted if wanted == spec.period_s else math.ceil(wanted / 60) * 60


class CloudWatch:
    display = "CloudWatch"

    def __init__(self, name: str, config: CloudWatchConfig) -> None:
        self.name = name
        self.timeout_s = config.timeout_s
        self.log_group = config.log_group
        self.log_groups = dict(config.log_groups)
        self.metrics = dict(config.metrics)
        has_logs = bool(self.log_group or self.log_groups)
        kinds = {Kind.LOGS} if has_logs else set()
        self.kinds: frozenset[Kind] = frozenset(kinds | ({Kind.METRICS} if self.metrics else set()))
        self.system = "logs" if has_logs else "cloudwatch"
        self.logs = AwsBackend(self.display, "logs", config)
        self.cloudwatch = AwsBackend(self.display, "cloudwatch", config)

    async def health(self) -> Health:
        """The same permissions queries need: read one event of the log group, or one metric."""
        async with deadline(self.display, self.timeout_s):
            group = self.log_group or next(iter(self.log_groups.values()), None)
            if group is not None:
                return await self._group_health(group)
            if self.metrics:
                await self._fetch(next(iter(self.metrics.values())), None, INSTANT_WINDOW_S)
                return Health(True, "metrics readable")
            await self.logs.call("describe_log_groups", limit=1)
            return Health(True, "reachable")

    async def _group_health(self, group: str) -> Health:
        now_ms = int(time.time() * 1000)
        try:
            await self.logs.call("filter_log_events", logGroupName=group, startTime=now_ms - 60_000, limit=1)
        except ResourceNotFound:
            return Health(False, "log group not found")
        return Health(True, "log group readable")

    async def query(self, request: Query) -> Result:
        async with deadline(self.display, self.timeout_s):
            if isinstance(request, LogQuery) and Kind.LOGS in self.kinds:
                return await self._logs(request)
            if isinstance(request, MetricQuery) and Kind.METRICS in self.kinds:
                return await self._metrics(request)
        raise BackendQueryError(self.display, f"only {' and '.join(sorted(self.kinds)) or 'health'}")

    # --- metrics ------------------------------------------------------------------------------

    async def _metrics(self, request: MetricQuery) -> MetricResult:
        spec = self.metrics.get(request.metric)
        if request.raw or spec is None:
            aliases = ", ".join(sorted(self.metrics)[:5])
            raise BackendQueryError(self.display, f"no metric {safe(request.metric, 30)} (have {aliases})")
        points = await self._fetch(spec, request.service, request.range_s or INSTANT_WINDOW_S)
        if request.range_s:  # one series, already named by the question: no labels to repeat
            return MetricResult(request, series=(Series({}, points),) if points else (), unit=spec.unit)
        samples = (Sample({}, points[-1][1]),) if points else ()
        return MetricResult(request, samples=samples, unit=spec.unit)

    async def _fetch(self, spec: CloudWatchMetric, service: str | None, span_s: int) -> tuple[tuple[float, float], ...]:
        end = datetime.now(UTC)
        start = datetime.fromtimestamp(end.timestamp() - span_s, UTC)
        answer = await self.cloudwatch.call(
            "get_metric_data",
            MetricDataQueries=[metric_query(spec, service, period_for(spec, span_s))],
            StartTime=start,
            EndTime=end,
            ScanBy="TimestampAscending",
        )
        results = answer.get("MetricDataResults")
        if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], Mapping):
            raise BadBackendResponse(self.display, "no MetricDataResults in answer")
        return self._points(results[0], spec.scale)

    def _points(self, result: Mapping[str, Any], scale: float) -> tuple[tuple[float, float], ...]:
        status = result.get("StatusCode")
        if status == "Forbidden":
            raise BackendAuthError(self.display, 403)
        if status == "InternalError":
            raise BackendError(self.display, "internal error")
        stamps, values = result.get("Timestamps"), result.get("Values")
        if not isinstance(stamps, list) or not isinstance(values, list) or len(stamps) != len(values):
            raise BadBackendResponse(self.display, "no Timestamps and Values in answer")
        points = []
        for stamp, value in zip(stamps, values, strict=True):
            if not isinstance(stamp, datetime) or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadBackendResponse(self.display, "value is not a number")
            points.append((stamp.timestamp(), float(value) * scale))
        return tuple(sorted(points))

    # --- logs ---------------------------------------------------------------------------------

    def group_for(self, service: str | None) -> tuple[str, list[str]]:
        """(log group, extra search terms): the service's own group, else the default group
        searched for the service's name."""
        if service is not None and service.lower() in self.log_groups:
            return self.log_groups[service.lower()], []
        if self.log_group is None:
            wanted = f"no log group for {safe(service, 30)}" if service else "name a service"
            raise BackendQueryError(self.display, wanted)
        return self.log_group, [service] if service else []

    async def _logs(self, request: LogQuery) -> LogResult:
        """Newest slices of the range first, until enough lines are found: FilterLogEvents
        answers oldest first, so reading the whole range in order could end on old lines."""
        group, extra = self.group_for(request.service)
        level = [LEVEL_TERMS.get(request.level.lower(), request.level)] if request.level else []
        pattern = filter_pattern([*extra, *level, *request.terms])
        params: dict[str, Any] = {"logGroupName": group, "limit": PAGE_SIZE}
        if pattern:
            params["filterPattern"] = pattern
        newest = Newest(max(1, request.limit * 4))
        end_ms = int(time.time() * 1000)
        exact = True
        for start, end in slices(end_ms - request.range_s * 1000, end_ms):
            exact = await self._search({**params, "startTime": start, "endTime": end}, newest) and exact
            if newest.full():
                exact = exact and start <= end_ms - request.range_s * 1000
                break
        lines = [LogLine(line.timestamp, line.message, request.service or "") for line in newest.lines()]
        return LogResult(request, tidy(lines, request.limit), total=newest.seen if exact else None)

    async def _search(self, params: dict[str, Any], newest: Newest) -> bool:
        """One time slice, a few pages at most; whether it was read to the end."""
        for _ in range(MAX_PAGES):
            answer = await self.logs.call("filter_log_events", **params)
            for stamp, line in _events(self.display, answer):
                newest.add(stamp, line)
            token = answer.get("nextToken")
            if not isinstance(token, str) or not token:
                return True
            params = {**params, "nextToken": token}
        return False

    def format(self, result: Result) -> str:
        if isinstance(result, LogResult):
            return format_logs(result)
        assert isinstance(result, MetricResult)
        return format_metric(result)


def slices(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The range as (start, end) slices, newest first: the last sixteenth, the sixteenth before
    it, then an eighth, a quarter and the oldest half. Ends are inclusive, so slices do not touch."""
    span = end_ms - start_ms
    bounds = [end_ms - span * part // 16 for part in (0, 1, 2, 4, 8, 16)]
    return [(bounds[i + 1], bounds[i] - (1 if i else 0)) for i in range(len(bounds) - 1)]


class Newest:
    """The `keep` newest log lines seen so far (a min-heap), and how many were seen in all."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.seen = 0
        self._heap: list[tuple[int, int, LogLine]] = []

    def add(self, stamp: int, line: LogLine) -> None:
        self.seen += 1
        heapq.heappush(self._heap, (stamp, self.seen, line))
        if len(self._heap) > self.keep:
            heapq.heappop(self._heap)

    def full(self) -> bool:
        return len(self._heap) >= self.keep

    def lines(self) -> list[LogLine]:
        return [line for _, _, line in self._heap]


def _events(display: str, answer: Mapping[str, Any]) -> list[tuple[int, LogLine]]:
    events = answer.get("events")
    if not isinstance(events, list):
        raise BadBackendResponse(display, "no events in answer")
    lines = []
    for event in events:
        stamp = event.get("timestamp") if isinstance(event, Mapping) else None
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise BadBackendResponse(display, "event without a timestamp")
        message = event.get("message")
        lines.append((stamp, LogLine(stamp / 1000, str(message or "")[:SCANNED_CHARS])))
    return lines


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> CloudWatch:
    return CloudWatch(name, CloudWatchConfig(**config))
