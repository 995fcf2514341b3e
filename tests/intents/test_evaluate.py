from __future__ import annotations

import json

from intents.evaluate import Case, Report, judge, read_cases


def case(slots: dict[str, object], intent: str = "logs") -> Case:
    return Case("c1", "+1", "text", intent, slots)


def test_null_means_absent_and_unlisted_slots_are_not_judged() -> None:
    got = {"intent": "logs", "slots": {"level": "error", "range_s": 3600}}
    assert judge(case({"service": None, "level": "error"}), got).ok
    assert not judge(case({"range_s": None}), got).ok


def test_terms_compare_as_sets_and_alert_as_text() -> None:
    assert judge(case({"terms": ["b", "A"]}), {"intent": "logs", "slots": {"terms": ["a", "b"]}}).ok
    assert not judge(case({"terms": ["a"]}), {"intent": "logs", "slots": {"terms": ["a", "b"]}}).ok
    assert judge(case({"alert": "2"}, "ack"), {"intent": "ack", "slots": {"alert": "2"}}).ok
    assert not judge(case({"alert": "HighCPU"}, "ack"), {"intent": "ack", "slots": {"alert": "highcpu"}}).ok


def test_report_totals() -> None:
    report = Report()
    report.outcomes.append(judge(case({"level": "error"}), {"intent": "logs", "slots": {"level": "error"}}))
    report.outcomes.append(judge(case({"level": "warn"}), {"intent": "logs", "slots": {"level": "error"}}))
    report.outcomes.append(judge(case({}, "status"), {"intent": "unknown", "slots": {}}))
    assert report.intent_accuracy == 2 / 3
    assert report.slot_accuracy == 1 / 2
    assert report.joint_accuracy == 1 / 3
    assert report.per_intent() == {"logs": (1, 2), "status": (0, 1)}
    assert report.confusion() == {("status", "unknown"): 1}
    text = report.render(show_failures=True)
    assert "joint accuracy   33.3%" in text and "status       -> unknown" in text


def test_read_cases_skips_blank_lines() -> None:
    line = json.dumps({"id": "x", "user": "+1", "text": "hi", "expect": {"intent": "unknown", "slots": {}}})
    assert [c.id for c in read_cases([line, "", "  "])] == ["x"]


def test_report_scores_each_category_by_tag() -> None:
    report = Report()
    for tags, ok in ((("strict",), True), (("typo", "free"), False), (("follow-up",), True)):
        report.outcomes.append(
            judge(Case("c", "+1", "t", "status", {}, tags), {"intent": "status" if ok else "unknown", "slots": {}})
        )
    assert report.per_tag() == {"strict": (1, 1), "free": (0, 1), "typo": (0, 1), "followup": (1, 1)}
    assert "per category" in report.render() and "typo            0/1" in report.render()
