"""Score, grade, order, overrides and ignores."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bastion.workflows.engine import Overrides, Severity, analyze, grade, parse, score
from tests.workflows.builders import chain, edit, sms, step, wait
from tests.workflows.rule_cases import CASES

severities = st.lists(st.sampled_from(list(Severity)), max_size=40)


def test_score_follows_the_workflowmd_formula() -> None:
    """100 - (25·critical + 15·high + 5·medium + 2·low), floored at 0."""
    c, h, m, low = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
    assert score([]) == 100
    assert score([c, h, m, low]) == 100 - 47
    assert score([c] * 5) == 0
    assert score([c] * 9) == 0


def test_grade_bands() -> None:
    """≥ 90 Excellent, ≥ 70 Good, ≥ 50 Needs Attention, ≥ 30 High Risk, below Critical."""
    assert [grade(v) for v in (100, 90, 89, 70, 69, 50, 49, 30, 29, 0)] == [
        "Excellent", "Excellent", "Good", "Good", "Needs Attention", "Needs Attention",
        "High Risk", "High Risk", "Critical", "Critical",
    ]  # fmt: skip


@given(severities, st.sampled_from(list(Severity)))
def test_adding_a_finding_never_raises_the_score(found: list[Severity], extra: Severity) -> None:
    """One more finding of any severity gives a score at most the same (and never below 0)."""
    assert 0 <= score([*found, extra]) <= score(found)


@given(st.sampled_from(sorted(CASES)), st.randoms(use_true_random=False))
def test_same_workflow_gives_same_findings_in_same_order(rule_id: str, rnd: random.Random) -> None:
    """Shuffling the definition's lists changes nothing in the report: order is severity, rule id, node ids."""
    definition: dict[str, Any] = CASES[rule_id].bad
    shuffled = dict(definition)
    for key in ("actions", "connections", "triggers"):
        items = list(definition.get(key, []))
        rnd.shuffle(items)
        shuffled[key] = items
    first, second = analyze(parse(definition), CASES[rule_id].context), analyze(parse(shuffled), CASES[rule_id].context)
    keys = [f.sort_key for f in first.findings]
    assert keys == sorted(keys)
    assert {f.sort_key for f in first.findings} == {f.sort_key for f in second.findings}
    assert (first.score, first.grade) == (second.score, second.grade)


def _messy() -> dict[str, Any]:
    """No-wait texts, an empty body and a webhook over HTTP to a private host, in a draft."""
    return edit(
        chain(sms("a1"), sms("a2", " "), step("h1", "webhook", url="http://10.0.0.5/hook")),
        status="draft",
    )


def test_report_counts_score_and_grade_agree() -> None:
    """The counts per severity add up to the findings, and the score is the formula over them."""
    report = analyze(parse(_messy()))
    assert sum(report.counts.values()) == len(report.findings)
    assert report.score == score(f.severity for f in report.findings)
    assert report.grade == grade(report.score)
    assert [f.rule_id for f in report.findings] == [
        "message-missing-body", "webhook-private-url", "back-to-back-messages", "draft-not-published",
        "webhook-insecure-url",
    ]  # fmt: skip


def test_severity_override_changes_severity_order_and_score() -> None:
    """An account lowering a rule to low moves its findings down the list and raises the score accordingly."""
    base_report = analyze(parse(_messy()))
    lowered = analyze(parse(_messy()), overrides=Overrides(severity={"message-missing-body": Severity.LOW}))
    assert lowered.findings[-1].rule_id == "message-missing-body"
    assert lowered.findings[-1].severity is Severity.LOW
    assert lowered.score == base_report.score + 15 - 2


def test_ignoring_a_rule_drops_all_its_findings() -> None:
    """An ignored rule does not run: its findings are gone and the score does not count them."""
    report = analyze(parse(_messy()), overrides=Overrides(ignore_rules=frozenset({"draft-not-published"})))
    assert "draft-not-published" not in [f.rule_id for f in report.findings]
    assert report.score == analyze(parse(_messy())).score + 5


def test_ignoring_a_rule_on_one_node_keeps_it_elsewhere() -> None:
    """Ignoring (rule, node) drops only that node's finding; the same rule still reports other nodes."""
    wf = chain(sms("a1"), sms("a2", "two"), wait("w1"), sms("a3", "three"), sms("a4", "four"))
    report = analyze(parse(wf), overrides=Overrides(ignore_nodes=frozenset({("back-to-back-messages", "a2")})))
    hits = [f.node_ids for f in report.findings if f.rule_id == "back-to-back-messages"]
    assert hits == [("a3", "a4")]
    assert report.ignored == 1
