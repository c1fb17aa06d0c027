"""Errors of the visitors module, each with a stable code.

AppError
├── Forbidden
│   ├── NotSiteRole            403 VISITORS_ROLE_REQUIRED
│   ├── VisitorBlocked         403 VISITOR_BLOCKED
│   ├── PassInvalid            403 PASS_INVALID               (wrong code, or used up)
│   ├── PassWrongSite          403 PASS_WRONG_SITE
│   └── PassOutsideWindow      403 PASS_OUTSIDE_WINDOW        (extra: valid_from, valid_until)
├── NotFound
│   ├── SiteNotFound           404 SITE_NOT_FOUND
│   ├── VisitorNotFound        404 VISITOR_NOT_FOUND
│   ├── VisitNotFound          404 VISIT_NOT_FOUND
│   └── UploadNotFound         404 UPLOAD_NOT_FOUND
├── Conflict
│   ├── TransitionNotAllowed   409 VISIT_TRANSITION_NOT_ALLOWED (extra: current_status, requested)
│   └── MemberExists           409 SITE_MEMBER_EXISTS
├── PayloadTooLarge
│   └── UploadTooLarge         413 UPLOAD_TOO_LARGE
└── ValidationFailed
    ├── InvalidVisitorData     422 VALIDATION_FAILED          (extra: errors [{field, message}])
    └── UploadTypeRefused      422 UPLOAD_TYPE_REFUSED        (the content is not a JPEG, PNG or WebP image)
"""

from __future__ import annotations

from bastion.core.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, ValidationFailed


class NotSiteRole(Forbidden):
    code, title = "VISITORS_ROLE_REQUIRED", "Your role at this site does not allow this"


class VisitorBlocked(Forbidden):
    code, title = "VISITOR_BLOCKED", "The visitor is blocked"


class PassInvalid(Forbidden):
    code, title = "PASS_INVALID", "The pass is not valid"


class PassWrongSite(Forbidden):
    code, title = "PASS_WRONG_SITE", "The pass is for another site"


class PassOutsideWindow(Forbidden):
    code, title = "PASS_OUTSIDE_WINDOW", "The pass is not valid at this time"


class SiteNotFound(NotFound):
    code, title = "SITE_NOT_FOUND", "Site not found"


class VisitorNotFound(NotFound):
    code, title = "VISITOR_NOT_FOUND", "Visitor not found"


class VisitNotFound(NotFound):
    code, title = "VISIT_NOT_FOUND", "Visit not found"


class UploadNotFound(NotFound):
    code, title = "UPLOAD_NOT_FOUND", "No such file"


class TransitionNotAllowed(Conflict):
    code, title = "VISIT_TRANSITION_NOT_ALLOWED", "Not allowed in the visit's current status"


class MemberExists(Conflict):
    code, title = "SITE_MEMBER_EXISTS", "Already a member with this role"


class UploadTooLarge(PayloadTooLarge):
    code, title = "UPLOAD_TOO_LARGE", "The file is too large"


class InvalidVisitorData(ValidationFailed):
    """A field that breaks a rule (phone format, time zone, a window that ends before it starts)."""


class UploadTypeRefused(ValidationFailed):
    code, title = "UPLOAD_TYPE_REFUSED", "Not an accepted image type"
