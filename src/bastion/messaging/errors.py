"""Errors of the messaging module, each with a stable code.

AppError
├── Forbidden
│   ├── VerifyTokenMismatch    403 WEBHOOK_VERIFY_FAILED
│   ├── ContactOptedOut        403 CONTACT_OPTED_OUT
│   └── ContactSuppressed      403 CONTACT_SUPPRESSED          (extra: code, Meta's quality code)
├── NotFound
│   └── MessageNotFound        404 MESSAGE_NOT_FOUND
├── Conflict
│   └── TemplateExists         409 TEMPLATE_EXISTS
└── ValidationFailed
    ├── InvalidMessage         422 VALIDATION_FAILED           (extra: errors [{field, message}])
    ├── UnknownTemplate        422 TEMPLATE_UNKNOWN
    ├── TemplateParamsMismatch 422 TEMPLATE_PARAMS_MISMATCH    (extra: expected, given)
    └── OutsideWindow          422 OUTSIDE_24H_WINDOW          (hint: send a template)
"""

from __future__ import annotations

from bastion.core.errors import Conflict, Forbidden, NotFound, ValidationFailed


class VerifyTokenMismatch(Forbidden):
    code, title = "WEBHOOK_VERIFY_FAILED", "Webhook verification failed"


class ContactOptedOut(Forbidden):
    code, title = "CONTACT_OPTED_OUT", "The contact opted out"


class ContactSuppressed(Forbidden):
    code, title = "CONTACT_SUPPRESSED", "Sending to this contact is suppressed"


class MessageNotFound(NotFound):
    code, title = "MESSAGE_NOT_FOUND", "Message not found"


class TemplateExists(Conflict):
    code, title = "TEMPLATE_EXISTS", "Template already registered"


class InvalidMessage(ValidationFailed):
    """A message that breaks a rule of the API (phone format, text length, batch size)."""


class UnknownTemplate(ValidationFailed):
    code, title = "TEMPLATE_UNKNOWN", "Template not registered"


class TemplateParamsMismatch(ValidationFailed):
    code, title = "TEMPLATE_PARAMS_MISMATCH", "Wrong number of template parameters"


class OutsideWindow(ValidationFailed):
    code, title = "OUTSIDE_24H_WINDOW", "Free-form text outside the 24-hour window"
