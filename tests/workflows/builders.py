"""Workflow definitions for the engine's tests: a minimal healthy one, and edits of it."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"


def corpus() -> dict[str, dict[str, Any]]:
    """The known-good workflows, by file name: they must give zero findings."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))}


def sms(id: str, text: str = "Thanks for reaching out!", name: str | None = None) -> dict[str, Any]:
    return {
        "id": id,
        "type": "send_sms",
        "name": name if name is not None else f"Text {id}",
        "config": {"message": text},
    }


def wait(id: str, days: int = 1) -> dict[str, Any]:
    return {"id": id, "type": "wait", "name": f"Wait {days} day(s)", "config": {"duration": days, "unit": "days"}}


def step(id: str, type_: str, /, **config: Any) -> dict[str, Any]:
    return {"id": id, "type": type_, "name": f"{type_} {id}", "config": config}


def link(*ids: str) -> list[dict[str, Any]]:
    return [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]


def base() -> dict[str, Any]:
    """One filtered trigger, one text: healthy."""
    return {
        "id": "wf_1",
        "name": "Webinar signup - confirmation",
        "status": "published",
        "version": 1,
        "settings": {"allowReentry": False, "stopOnResponse": True},
        "triggers": [
            {
                "id": "t1",
                "type": "contact_tag_added",
                "name": "Webinar",
                "filters": [{"field": "tag", "value": "webinar"}],
            }
        ],
        "actions": [sms("a1")],
        "connections": link("t1", "a1"),
    }


def chain(*actions: dict[str, Any], **top: Any) -> dict[str, Any]:
    """The base workflow with these actions in one line after the trigger."""
    wf = base()
    wf["actions"] = list(actions)
    wf["connections"] = link("t1", *(a["id"] for a in actions))
    wf.update(copy.deepcopy(top))
    return wf


def edit(wf: dict[str, Any], **top: Any) -> dict[str, Any]:
    out = copy.deepcopy(wf)
    out.update(copy.deepcopy(top))
    return out


def condition(id: str, *branches: tuple[str, int]) -> dict[str, Any]:
    return {
        "id": id,
        "type": "if_else",
        "name": f"Check {id}",
        "branches": [
            {"id": b, "name": b, "conditions": [{"field": "tags", "operator": "includes", "value": "x"}] * n}
            for b, n in branches
        ],
    }


def broken() -> dict[str, Any]:
    """Five issues of four severities: a webhook to a private host over HTTP, a secret, back-to-back texts."""
    return edit(
        chain(
            sms("a1"),
            sms("a2", "Another"),
            step(
                "h1",
                "webhook",
                url="http://10.1.2.3/hook",
                headers={"Authorization": "Bearer sk_live_abcdefgh12345678"},
            ),
            step("x1", "teleport"),
        ),
        id="wf_broken",
        name="Broken lead flow",
    )
