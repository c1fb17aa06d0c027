"""A local Stripe speaking its wire format for the calls billing makes, and the events Stripe would send.

A raw asyncio HTTP/1.1 server (as ``tests/identity/fake_provider.py``), so it can also misbehave: a 500 with
Stripe's error body, a dropped connection, an answer that never comes. Requests are what the official SDK
sends: ``application/x-www-form-urlencoded`` with Stripe's bracket nesting (``line_items[0][price]=…``),
``Authorization: Bearer sk_…``, ``Idempotency-Key`` (a repeated key gets the first answer, as Stripe does).
Answers are Stripe's JSON objects (with ``object``), errors ``{"error": {"type", "code", "message", "param"}}``.

* ``POST /v1/customers``, ``POST /v1/checkout/sessions``, ``POST /v1/billing_portal/sessions``
* ``GET /v1/subscriptions/{id}``, ``POST /v1/subscriptions/{id}`` (``cancel_at_period_end``, a price change
  on ``items[0]`` with ``proration_behavior``: the proration is computed and kept in ``prorations``)

What Stripe does on its own (a customer paying, a card failing, a period ending) are methods that change the
state and return the events Stripe would send, each to be signed with the SDK's own signer (:func:`signed`)
and delivered in whatever order a test wants.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.fake_http import listen, read_request, shut

API_KEY = "sk_test_bastion_fake"
WEBHOOK_SECRET = "whsec_bastion_fake_secret"
API_VERSION = "2025-03-31.basil"
MONTH = 30 * 86_400
PRICES = {"price_pro_monthly": 1500, "price_pro_yearly": 15000}
"""The prices the fake knows, with their amounts in cents."""
_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_counter):08d}"


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding back to nested values: ``a[b][0][c]=v`` → ``{"a": {"b": [{"c": "v"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        head, *rest = re.findall(r"[^\[\]]+", key)
        path = [head, *rest]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    decoded: dict[str, Any] = _lists(root)
    return decoded


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _error(status: int, kind: str, message: str, code: str | None = None, param: str | None = None) -> tuple[int, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return status, {"error": error}


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    """The body and ``Stripe-Signature`` header Stripe would send, made by the stripe SDK's own test signer."""
    body = json.dumps(event, separators=(",", ":"))
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    return body.encode(), header


@dataclass
class FakeStripe:
    clock: Callable[[], float]
    port: int = 0
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    prorations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    behaviour: dict[str, str] = field(default_factory=dict)
    """Path prefix → ``"500"``, ``"500-once"``, ``"drop"``, ``"hang"``."""
    _idempotent: dict[str, tuple[int, Any]] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def now(self) -> int:
        return int(self.clock())

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """``BASTION_BILLING`` for an app that bills through this fake."""
        return {
            "secret_key": API_KEY,
            "webhook_secret": WEBHOOK_SECRET,
            "api_base": self.url,
            "offers": {"pro": {"price": "price_pro_monthly"}, "pro_yearly": {"price": "price_pro_yearly"}},
            "retries": 1,
            "timeout_seconds": 5.0,
            **overrides,
        }

    async def start(self) -> None:
        self._server, self.port = await listen(self._serve)

    async def stop(self) -> None:
        await shut(self._server, self._release)

    # -- the wire ----------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, target, headers, body = await read_request(reader)
                path = urlsplit(target).path
                mode = next((m for p, m in self.behaviour.items() if path.startswith(p)), None)
                if mode in ("drop", "drop-once"):
                    if mode == "drop-once":
                        self.behaviour = {p: m for p, m in self.behaviour.items() if m != "drop-once"}
                    return
                if mode == "hang":
                    await self._release.wait()
                    return
                if mode in ("500", "500-once"):
                    if mode == "500-once":
                        self.behaviour = {p: m for p, m in self.behaviour.items() if m != "500-once"}
                    status, payload = _error(500, "api_error", "An unknown error occurred")
                else:
                    status, payload = self._answer(method, path, headers, body)
                data = json.dumps(payload).encode()
                reply = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    f"Request-Id: {new_id('req')}\r\nStripe-Version: {API_VERSION}\r\n\r\n"
                ).encode()
                writer.write(reply + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided: sk_***")
        form = decode_form(body) if method == "POST" else {}
        self.requests.append((method, path, form))
        key = headers.get("idempotency-key")
        if method == "POST" and key:
            if key in self._idempotent:
                return self._idempotent[key]
            answer = self._route(method, path, form)
            if answer[0] < 500:
                self._idempotent[key] = answer
            return answer
        return self._route(method, path, form)

    def _route(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, Any]:
        if method == "POST" and path == "/v1/customers":
            return self._create_customer(form)
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(form)
        if method == "POST" and path == "/v1/billing_portal/sessions":
            customer = form.get("customer")
            if customer not in self.customers:
                return _error(400, "invalid_request_error", f"No such customer: '{customer}'", "resource_missing")
            return 200, {
                "id": new_id("bps"),
                "object": "billing_portal.session",
                "customer": customer,
                "return_url": form.get("return_url"),
                "url": f"{self.url}/p/session/{new_id('ps')}",
                "created": self.now(),
                "livemode": False,
            }
        found = re.fullmatch(r"/v1/subscriptions/([\w]+)", path)
        if found:
            sub = self.subscriptions.get(found.group(1))
            if sub is None:
                return _error(
                    404, "invalid_request_error", f"No such subscription: '{found.group(1)}'", "resource_missing", "id"
                )
            if method == "GET":
                return 200, sub
            return self._update_subscription(sub, form)
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _create_customer(self, form: dict[str, Any]) -> tuple[int, Any]:
        customer = {
            "id": new_id("cus"),
            "object": "customer",
            "email": form.get("email"),
            "metadata": form.get("metadata", {}),
            "created": self.now(),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return 200, customer

    def _create_session(self, form: dict[str, Any]) -> tuple[int, Any]:
        if form.get("mode") != "subscription":
            return _error(400, "invalid_request_error", "Missing required param: mode.", "parameter_missing", "mode")
        if form.get("customer") not in self.customers:
            return _error(400, "invalid_request_error", "No such customer", "resource_missing", "customer")
        items = form.get("line_items") or []
        price = items[0].get("price") if items else None
        if price not in PRICES:
            return _error(400, "invalid_request_error", f"No such price: '{price}'", "resource_missing", "price")
        session_id = new_id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "customer": form["customer"],
            "client_reference_id": form.get("client_reference_id"),
            "metadata": form.get("metadata", {}),
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "url": f"{self.url}/c/pay/{session_id}",
            "subscription": None,
            "created": self.now(),
            "expires_at": self.now() + 86_400,
            "livemode": False,
            "_price": price,
            "_subscription_data": form.get("subscription_data", {}),
        }
        self.sessions[session_id] = session
        return 200, {k: v for k, v in session.items() if not k.startswith("_")}

    def _update_subscription(self, sub: dict[str, Any], form: dict[str, Any]) -> tuple[int, Any]:
        previous: dict[str, Any] = {}
        if "cancel_at_period_end" in form:
            previous["cancel_at_period_end"] = sub["cancel_at_period_end"]
            sub["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        items = form.get("items") or []
        if items:
            price = items[0].get("price")
            if price not in PRICES:
                return _error(400, "invalid_request_error", f"No such price: '{price}'", "resource_missing", "price")
            item = sub["items"]["data"][0]
            if items[0].get("id") != item["id"]:
                return _error(400, "invalid_request_error", "No such subscription item", "resource_missing", "items")
            old = item["price"]["id"]
            if price != old:
                previous["items"] = {"data": [{**item, "price": dict(item["price"])}]}
                if form.get("proration_behavior", "create_prorations") != "none":
                    left = max(0, item["current_period_end"] - self.now()) / MONTH
                    self.prorations.append(
                        {
                            "subscription": sub["id"],
                            "from": old,
                            "to": price,
                            "amount": round((PRICES[price] - PRICES[old]) * left),
                        }
                    )
                item["price"] = self._price(price)
        self.pending.append(self._event("customer.subscription.updated", sub, previous))
        return 200, sub

    # -- what Stripe does on its own, and the events it sends ------------------------------------------

    pending: list[dict[str, Any]] = field(default_factory=list)
    """Events caused by API calls (an update), waiting for the test to deliver them."""

    def _price(self, price: str) -> dict[str, Any]:
        return {
            "id": price,
            "object": "price",
            "unit_amount": PRICES[price],
            "currency": "eur",
            "recurring": {"interval": "month"},
        }

    def _event(self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        return {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "type": kind,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
        }

    def _invoice(self, sub: dict[str, Any], status: str) -> dict[str, Any]:
        return {
            "id": new_id("in"),
            "object": "invoice",
            "customer": sub["customer"],
            "status": status,
            "amount_due": sub["items"]["data"][0]["price"]["unit_amount"],
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}},
            "created": self.now(),
        }

    def start_checkout(self, user_id: str, price: str = "price_pro_monthly", trial_days: int = 0) -> str:
        """What billing's checkout asks for (a customer and a session), made here directly: a session id."""
        _, customer = self._create_customer({"metadata": {"bastion_user_id": user_id}})
        sub_data: dict[str, Any] = {"metadata": {"bastion_user_id": user_id, "offer": "pro"}}
        if trial_days:
            sub_data["trial_period_days"] = str(trial_days)
        form = {
            "mode": "subscription",
            "customer": customer["id"],
            "client_reference_id": user_id,
            "line_items": [{"price": price, "quantity": "1"}],
            "metadata": sub_data["metadata"],
            "subscription_data": sub_data,
        }
        _, session = self._create_session(form)
        return str(session["id"])

    def trial_ends(self, sub_id: str) -> list[dict[str, Any]]:
        """Three days before the trial's end Stripe warns; at its end the first real invoice is paid."""
        sub = self.subscriptions[sub_id]
        warning = self._event("customer.subscription.trial_will_end", sub)
        return [warning, *self.pay(sub_id)]

    def complete_checkout(self, session_id: str) -> list[dict[str, Any]]:
        """The customer pays on Stripe's page: the subscription starts (trialing if the session asked for a
        trial); Stripe sends subscription.created, invoice.paid and checkout.session.completed."""
        session = self.sessions[session_id]
        sub_data = session["_subscription_data"]
        trial_days = int(sub_data.get("trial_period_days") or 0)
        now = self.now()
        sub_id = new_id("sub")
        period_end = now + (trial_days * 86_400 if trial_days else MONTH)
        sub = {
            "id": sub_id,
            "object": "subscription",
            "customer": session["customer"],
            "status": "trialing" if trial_days else "active",
            "cancel_at_period_end": False,
            "created": now,
            "trial_end": period_end if trial_days else None,
            "metadata": sub_data.get("metadata", {}),
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": new_id("si"),
                        "object": "subscription_item",
                        "price": self._price(session["_price"]),
                        "quantity": 1,
                        "current_period_start": now,
                        "current_period_end": period_end,
                    }
                ],
            },
            "livemode": False,
        }
        self.subscriptions[sub_id] = sub
        session.update(status="complete", payment_status="paid", subscription=sub_id)
        public = {k: v for k, v in session.items() if not k.startswith("_")}
        return [
            self._event("customer.subscription.created", sub),
            self._event("invoice.paid", self._invoice(sub, "paid")),
            self._event("checkout.session.completed", public),
        ]

    def _set_status(self, sub_id: str, status: str) -> tuple[dict[str, Any], dict[str, Any]]:
        sub = self.subscriptions[sub_id]
        previous = {"status": sub["status"]}
        sub["status"] = status
        return sub, previous

    def fail_payment(self, sub_id: str) -> list[dict[str, Any]]:
        """The renewal's charge fails: past_due, invoice.payment_failed."""
        sub, previous = self._set_status(sub_id, "past_due")
        return [
            self._event("invoice.payment_failed", self._invoice(sub, "open")),
            self._event("customer.subscription.updated", sub, previous),
        ]

    def pay(self, sub_id: str) -> list[dict[str, Any]]:
        """A retried (or renewed) charge succeeds: active, invoice.paid."""
        sub, previous = self._set_status(sub_id, "active")
        item = sub["items"]["data"][0]
        if item["current_period_end"] <= self.now():
            item["current_period_start"], item["current_period_end"] = self.now(), self.now() + MONTH
        events = [self._event("invoice.paid", self._invoice(sub, "paid"))]
        if previous["status"] != "active":
            events.append(self._event("customer.subscription.updated", sub, previous))
        return events

    def end_period(self, sub_id: str) -> list[dict[str, Any]]:
        """The period ends: a subscription set to cancel is canceled (deleted), others renew (paid)."""
        sub = self.subscriptions[sub_id]
        if sub["cancel_at_period_end"]:
            sub, _ = self._set_status(sub_id, "canceled")
            sub["ended_at"] = self.now()
            return [self._event("customer.subscription.deleted", sub)]
        return self.pay(sub_id)

    def take_pending(self) -> list[dict[str, Any]]:
        events, self.pending = self.pending, []
        return events
