"""Configuration: steps set up wrong — empty messages, webhooks, secrets, references to what does not exist."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import msgspec

from bastion.workflows.engine.findings import Category, Hit, Rule, Severity, rule
from bastion.workflows.engine.model import Context, Graph, Kind
from bastion.workflows.engine.rules.util import body, channel, label, strings

RULES: list[Rule] = []
C = Category.CONFIGURATION

# Credentials with a recognisable shape (the prefixes vendors give their keys), plus a literal bearer token
# or password assignment. Merge fields ({{custom_values.api_key}}) are the fix, so they never match.
SECRET = re.compile(
    r"(?:sk|rk)_live_[0-9A-Za-z]{8,}|AKIA[0-9A-Z]{16}|gh[pousr]_[0-9A-Za-z]{20,}|xox[abpr]-[0-9A-Za-z-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|eyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,}"
    r"|(?i:bearer\s+(?!\{\{)[0-9A-Za-z._~+/-]{16,})|(?i:(?:password|passwd|api[_-]?key|secret)\s*[=:]\s*(?!\{\{)[^\s&\"']{6,})"
)
SECRET_KEYS = re.compile(r"(?i)(authorization|api[_-]?key|token|secret|password)$")
# Every secret shape above contains one of these (lower-cased): a substring test over a step's config as JSON
# text (C speed) skips the steps with none, most of them, before any regex or walk (measured in
# bench/workflows.py: the walk and regexes on every step were half the time of a 500-step analysis).
_MARKERS = re.compile(
    rb"_live_|akia|gh[pousr]_|xox|aiza|private key|eyj|bearer|passw|api[_-]?key|secret|authorization|token"
)
_LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "0.0.0.0"})


@rule(RULES, "message-missing-body", Severity.HIGH, C, "A message with no text")
def message_missing_body(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.MESSAGE):
        if channel(s) in ("voicemail", "call"):
            continue  # a recording or a call, not a text
        if not body(s) and not s.config.get("templateId"):
            yield Hit((s.id,), f"Message '{label(s)}' has no body: GHL sends nothing.", "Write the message text.")


@rule(RULES, "email-missing-subject", Severity.MEDIUM, C, "An email with no subject")
def email_missing_subject(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.MESSAGE):
        if channel(s) == "email" and not strings(s.config, "subject") and not s.config.get("templateId"):
            yield Hit((s.id,), f"Email '{label(s)}' has no subject line.", "Add a subject; empty ones land in spam.")


@rule(RULES, "wait-missing-duration", Severity.MEDIUM, C, "A wait that waits for nothing")
def wait_missing_duration(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.WAIT):
        c = s.config
        amount = c.get("duration", c.get("value", c.get("amount")))
        waits_for_event = bool(c.get("event") or c.get("until") or c.get("type") in ("event", "condition", "date"))
        if not waits_for_event and (not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0):
            yield Hit(
                (s.id,),
                f"Wait '{label(s)}' has no positive duration and no event: it does not wait.",
                "Set how long to wait (e.g. 1 day), or the event to wait for.",
            )


@rule(RULES, "webhook-missing-url", Severity.HIGH, C, "A webhook with no URL")
def webhook_missing_url(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.WEBHOOK):
        if not strings(s.config, "url"):
            yield Hit((s.id,), f"Webhook '{label(s)}' has no URL: every run fails.", "Enter the URL to call.")


@functools.lru_cache(maxsize=1024)
def _private_host(host: str) -> bool:
    if host in _LOCAL_HOSTS or host.endswith((".local", ".internal", ".localhost")):
        return True
    if ":" not in host and not host[-1:].isdigit():
        return False  # a host name (an IPv4 address ends in a digit, an IPv6 one has colons)
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified


@rule(RULES, "webhook-private-url", Severity.HIGH, C, "A webhook to localhost or a private address")
def webhook_private_url(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.WEBHOOK):
        for url in strings(s.config, "url"):
            host = (urlsplit(url).hostname or "").lower()
            if host and _private_host(host):
                yield Hit(
                    (s.id,),
                    f"Webhook '{label(s)}' calls {host}, which GHL's servers cannot reach.",
                    "Use the public HTTPS address of the receiving service.",
                )


@rule(RULES, "webhook-insecure-url", Severity.MEDIUM, C, "A webhook over plain HTTP")
def webhook_insecure_url(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.WEBHOOK):
        for url in strings(s.config, "url"):
            if urlsplit(url).scheme.lower() == "http":
                yield Hit(
                    (s.id,),
                    f"Webhook '{label(s)}' sends contact data over plain HTTP.",
                    "Use an https:// URL.",
                )


@rule(RULES, "hardcoded-secret", Severity.CRITICAL, C, "A credential written into a step")
def hardcoded_secret(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.workflow.steps:
        if not s.config:
            continue
        text = msgspec.json.encode(s.config).lower()
        if not _MARKERS.search(text):
            continue
        found = _first_credential(s.config, "")
        if found is not None:
            yield Hit(
                (s.id,),
                f"Step '{label(s)}' has a credential written into '{_path(found)}': anyone who can see it can use it.",
                "Move it to a Custom Value and reference it as {{custom_values.<name>}}; rotate the exposed one.",
            )


def _first_credential(value: object, leaf: str) -> list[str | int] | None:
    """The path (keys and list indexes) to the first string, depth first, that is a credential: one of
    :data:`SECRET`'s shapes, or a literal of 8+ characters in a field named like a secret (``leaf`` is the
    field's name; a list item has none). The path is built only for the string found: building every string's
    path up front was a fifth of this rule's time at 500 steps (bench/workflows.py)."""
    if isinstance(value, str):
        if (leaf and len(value) >= 8 and "{{" not in value and SECRET_KEYS.search(leaf)) or SECRET.search(value):
            return []
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _first_credential(v, str(k))
            if found is not None:
                return [str(k), *found]
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _first_credential(v, "")
            if found is not None:
                return [i, *found]
    return None


def _path(parts: list[str | int]) -> str:
    """``headers.Authorization``, ``tokens[0]``: the form the finding names a field in."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@rule(RULES, "unknown-user", Severity.HIGH, C, "A reference to a user who does not exist")
def unknown_user(g: Graph, ctx: Context) -> Iterator[Hit]:
    if ctx.users is None:
        return
    for s in (*g.kind(Kind.ASSIGN_USER), *g.kind(Kind.NOTIFY)):
        for user in strings(s.config, "userIds", "userId", "users", "user"):
            if user not in ctx.users:
                yield Hit(
                    (s.id,),
                    f"Step '{label(s)}' refers to user '{user}', who is no longer in this location.",
                    "Pick an existing user (GHL does not flag deleted ones).",
                )


@rule(RULES, "unknown-custom-field", Severity.HIGH, C, "A reference to a custom field that does not exist")
def unknown_custom_field(g: Graph, ctx: Context) -> Iterator[Hit]:
    if ctx.custom_fields is None:
        return
    for s in g.kind(Kind.UPDATE_FIELD):
        for f in strings(s.config, "field", "fieldKey", "customFieldId"):
            if f not in ctx.custom_fields:
                yield Hit(
                    (s.id,),
                    f"Step '{label(s)}' updates custom field '{f}', which no longer exists.",
                    "Pick an existing custom field (renamed or deleted fields fail silently).",
                )


@rule(RULES, "unknown-pipeline-stage", Severity.HIGH, C, "A reference to a pipeline stage that does not exist")
def unknown_pipeline_stage(g: Graph, ctx: Context) -> Iterator[Hit]:
    if ctx.pipeline_stages is None:
        return
    for s in g.kind(Kind.OPPORTUNITY):
        for stage in strings(s.config, "stageId", "stage"):
            if stage not in ctx.pipeline_stages:
                yield Hit(
                    (s.id,),
                    f"Step '{label(s)}' moves opportunities to stage '{stage}', which no longer exists.",
                    "Pick an existing pipeline stage.",
                )


@rule(RULES, "notification-missing-recipient", Severity.MEDIUM, C, "An internal notification to nobody")
def notification_missing_recipient(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.NOTIFY):
        to = strings(s.config, "userIds", "userId", "users", "user", "to", "email", "phone")
        if not to and not s.config.get("allUsers") and not s.config.get("assignedUser"):
            yield Hit(
                (s.id,),
                f"Notification '{label(s)}' has no recipient.",
                "Choose the users (or the assigned user) to notify.",
            )


@rule(RULES, "unknown-action-type", Severity.LOW, C, "An action type the debugger does not know")
def unknown_action_type(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.UNKNOWN):
        yield Hit(
            (s.id,),
            f"Step '{label(s)}' has type '{s.type}', which the debugger does not know: it was kept but not checked.",
            "Nothing to fix in the workflow if the type is right; tell us about it so a rule can cover it.",
        )
