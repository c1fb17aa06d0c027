"""Two sample workflows for the development endpoints (``GET /test/workflows``, ``/test/health``)."""

from __future__ import annotations

from typing import Any

SAMPLES: dict[str, dict[str, Any]] = {
    "healthy": {
        "id": "sample_healthy",
        "name": "Webinar signup - confirmation and reminder",
        "status": "published",
        "version": 1,
        "settings": {"allowReentry": False, "stopOnResponse": True},
        "triggers": [
            {
                "id": "t1",
                "type": "form_submitted",
                "name": "Webinar form",
                "filters": [{"field": "formId", "value": "f1"}],
            }
        ],
        "actions": [
            {
                "id": "a1",
                "type": "send_email",
                "name": "Confirmation",
                "config": {"subject": "You're in", "body": "See you!"},
            },
            {"id": "a2", "type": "wait", "name": "Wait 1 day", "config": {"duration": 1, "unit": "days"}},
            {"id": "a3", "type": "send_sms", "name": "Reminder", "config": {"message": "Starts tomorrow!"}},
        ],
        "connections": [{"from": "t1", "to": "a1"}, {"from": "a1", "to": "a2"}, {"from": "a2", "to": "a3"}],
    },
    "broken": {
        "id": "sample_broken",
        "name": "New Workflow : 1700000000000",
        "status": "draft",
        "version": 1,
        "settings": {"allowReentry": True},
        "triggers": [{"id": "t1", "type": "contact_tag_added", "name": "Any tag"}],
        "actions": [
            {"id": "a1", "type": "send_sms", "name": "Hello", "config": {"message": ""}},
            {"id": "a2", "type": "send_sms", "name": "Hello again", "config": {"message": "Hi"}},
            {"id": "a3", "type": "webhook", "name": "Notify CRM", "config": {"url": "http://localhost:8080/hook"}},
            {"id": "a4", "type": "goto", "name": "Again", "config": {"target": "a1"}},
        ],
        "connections": [
            {"from": "t1", "to": "a1"},
            {"from": "a1", "to": "a2"},
            {"from": "a2", "to": "a3"},
            {"from": "a3", "to": "a4"},
        ],
    },
}
