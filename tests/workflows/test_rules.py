"""Every rule fires on its fixture and stays quiet on the near miss; the known-good corpus gives nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.workflows.engine import RULES, Context, analyze, parse
from tests.workflows.builders import corpus
from tests.workflows.rule_cases import CASES

CORPUS_CONTEXT = Context(
    users=frozenset({"usr_dana", "usr_lee", "usr_front"}),
    custom_fields=frozenset({"customer_since"}),
    pipeline_stages=frozenset({"st_kickoff", "st_won"}),
)


def _rule_ids(definition: dict[str, Any], context: Context) -> list[str]:
    return [f.rule_id for f in analyze(parse(definition), context).findings]


def test_there_are_at_least_30_rules_each_with_a_case() -> None:
    """The catalogue has 30 rules or more, and every one has a triggering and a quiet fixture."""
    assert len(RULES) >= 30
    assert sorted(CASES) == sorted(r.id for r in RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_its_fixture(rule_id: str) -> None:
    """The rule reports the fixture built to break it, naming the nodes concerned."""
    case = CASES[rule_id]
    findings = [f for f in analyze(parse(case.bad), case.context).findings if f.rule_id == rule_id]
    assert findings, f"{rule_id} did not fire"
    assert findings[0].node_ids == case.nodes
    assert findings[0].message and findings[0].fix


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_is_quiet_on_the_near_miss(rule_id: str) -> None:
    """The rule says nothing about the fixture that only looks like its mistake."""
    case = CASES[rule_id]
    assert rule_id not in _rule_ids(case.good, case.context)


@pytest.mark.parametrize("name", sorted(corpus()))
def test_known_good_workflow_gives_zero_findings(name: str) -> None:
    """Realistic, healthy workflows get no finding at all (false positives kill a linter)."""
    report = analyze(parse(corpus()[name]), CORPUS_CONTEXT)
    assert [(f.rule_id, f.node_ids) for f in report.findings] == []
    assert (report.score, report.grade) == (100, "Excellent")


def test_corpus_is_clean_without_account_context_too() -> None:
    """Without the account's users, fields and stages, the reference rules stay off rather than guess."""
    for name, definition in corpus().items():
        assert _rule_ids(definition, Context()) == [], name


def test_unknown_action_types_are_kept_and_reported() -> None:
    """A type the preset does not know is kept with its type and config, reported, and does not stop the rest."""
    definition = CASES["unknown-action-type"].bad
    workflow = parse(definition)
    step = next(s for s in workflow.steps if s.id == "x1")
    assert (step.kind, step.type, dict(step.config)) == ("unknown", "quantum_teleport", {"speed": 9})
    assert "unknown-action-type" in _rule_ids(definition, Context())


def test_every_rule_is_documented() -> None:
    """docs/workflows.md has a section for every rule, with its severity."""
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "workflows.md").read_text()
    missing = [r.id for r in RULES if f"**`{r.id}`** ({r.severity.value})" not in docs]
    assert missing == []


@pytest.mark.parametrize(
    "text",
    [
        "sk_live_51Habcdefghijkl",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "xoxb-1234567890-abcdef",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "-----BEGIN RSA PRIVATE KEY-----",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.sig",
        "Bearer abcdefghijklmnop1234",
        "https://api.example.com/?api_key=abc12345xyz",
        "password: hunter2hunter2",
    ],
)
def test_each_secret_shape_is_recognised(text: str) -> None:
    """Every credential shape the hardcoded-secret rule knows is recognised in a string."""
    from bastion.workflows.engine.rules.configuration import SECRET

    assert SECRET.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "Bearer {{custom_values.token}}",
        "https://api.example.com/v1/contacts",
        "Your password reset link: {{reset_link}}",
        "api_key={{custom_values.key}}",
        "The ghost of high school",
    ],
)
def test_merge_fields_and_prose_are_not_secrets(text: str) -> None:
    """Merge fields (the fix) and ordinary text with the same words are not taken for credentials."""
    from bastion.workflows.engine.rules.configuration import SECRET

    assert not SECRET.search(text)
