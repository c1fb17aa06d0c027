"""Errors of the workflows module, each with a stable code.

AppError
├── Unauthorized
│   └── WebhookStale              401 WEBHOOK_STALE      (a timestamp outside the tolerance: a replay)
├── Forbidden
│   └── GhlReconnectRequired      403 GHL_RECONNECT_REQUIRED   (the location's tokens were refused or removed)
├── NotFound
│   ├── WorkflowNotFound          404 WORKFLOW_NOT_FOUND
│   └── AnalysisNotFound          404 ANALYSIS_NOT_FOUND
├── ValidationFailed
│   ├── InvalidDefinition         422 INVALID_WORKFLOW_DEFINITION
│   ├── DefinitionUnavailable     422 WORKFLOW_DEFINITION_UNAVAILABLE (GHL gives metadata only: import it)
│   └── DiffMismatch              422 DIFF_DIFFERENT_WORKFLOWS
├── RateLimited
│   ├── DailyAnalysesReached      429 ANALYSES_LIMIT_REACHED
│   └── GhlRateLimited            429 GHL_RATE_LIMITED   (GHL's 100 requests / 10 s per location, counted here)
└── BadGateway
    └── GhlUnavailable            502 GHL_UNAVAILABLE
"""

from __future__ import annotations

from bastion.core.errors import BadGateway, Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed


class WebhookStale(Unauthorized):
    code, title = "WEBHOOK_STALE", "Webhook timestamp outside the tolerance"


class GhlReconnectRequired(Forbidden):
    code, title = "GHL_RECONNECT_REQUIRED", "Reconnect your GoHighLevel location"


class WorkflowNotFound(NotFound):
    code, title = "WORKFLOW_NOT_FOUND", "Workflow not found"


class AnalysisNotFound(NotFound):
    code, title = "ANALYSIS_NOT_FOUND", "Analysis not found"


class InvalidDefinition(ValidationFailed):
    code, title = "INVALID_WORKFLOW_DEFINITION", "Not a workflow definition"


class DefinitionUnavailable(ValidationFailed):
    code, title = "WORKFLOW_DEFINITION_UNAVAILABLE", "GoHighLevel does not expose this workflow's steps"


class DiffMismatch(ValidationFailed):
    code, title = "DIFF_DIFFERENT_WORKFLOWS", "The analyses are of different workflows"


class DailyAnalysesReached(RateLimited):
    code, title = "ANALYSES_LIMIT_REACHED", "Your plan's daily analyses are used up"


class GhlRateLimited(RateLimited):
    code, title = "GHL_RATE_LIMITED", "GoHighLevel's rate limit for this location is reached"


class GhlUnavailable(BadGateway):
    code, title = "GHL_UNAVAILABLE", "GoHighLevel did not answer"
