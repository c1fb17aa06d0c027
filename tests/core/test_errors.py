"""Edge stage 6 and the exception handler: every error is RFC 9457 problem+json with a stable code."""

from __future__ import annotations

from tests.conftest import serve

PRODUCTION = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": ["api.example.com", "localhost"],
}


async def test_unknown_path_is_a_404_problem(make_app):
    """An unrouted path answers problem+json 404 with the request id."""
    async with serve(make_app()) as http:
        response = await http.get("/no/such/thing")
    body = response.json()
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert body == {
        "type": "/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "Nothing is served at this path.",
        "code": "NOT_FOUND",
        "request_id": response.headers["x-request-id"],
    }


async def test_domain_errors_keep_their_code_and_detail(make_app):
    """An AppError raised by a handler is rendered with its own status, code and detail."""
    async with serve(make_app()) as http:
        response = await http.get("/t/conflict")
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"
    assert response.json()["detail"] == "That already exists."


async def test_unhandled_exception_in_production_reveals_nothing(make_app, logs):
    """In production a crash is a generic 500: no exception text, no internals."""
    async with serve(make_app(**PRODUCTION)) as http:
        response = await http.get("/t/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "INTERNAL_ERROR"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


async def test_unhandled_exception_is_logged_once_with_traceback(make_app, logs):
    """The crash is logged exactly once, with the request id and the traceback, secrets redacted."""
    async with serve(make_app(**PRODUCTION)) as http:
        response = await http.get("/t/boom")
    request_id = response.headers["x-request-id"]
    errors = [line for line in logs() if line.get("event") == "unhandled exception"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == request_id
    assert "Traceback" in errors[0]["exception"] and "RuntimeError" in errors[0]["exception"]
    assert "hunter2" not in str(errors[0])


async def test_development_500_names_the_exception(make_app):
    """In development the 500 detail names the exception, to help whoever is debugging."""
    async with serve(make_app()) as http:
        response = await http.get("/t/boom")
    assert response.status_code == 500
    assert "RuntimeError" in response.json()["detail"]


async def test_problem_type_is_documented(make_app):
    """A problem's type URI resolves to a page naming the code and status."""
    async with serve(make_app()) as http:
        problem = (await http.get("/nope")).json()
        page = await http.get(problem["type"])
    assert page.status_code == 200
    assert page.text.startswith("NOT_FOUND\n404 Not found")


async def test_error_escaping_the_app_becomes_a_problem(make_app):
    """An exception raised outside Litestar's handlers still becomes a 500 problem, logged once."""
    from bastion.core.edge.errors import ErrorBoundaryMiddleware

    async def broken(scope, receive, send):
        raise ValueError("kaboom")

    boundary = ErrorBoundaryMiddleware(broken, production=True)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    from bastion.core.edge.asgi import RequestContext

    scope = {"type": "http", "method": "GET", "bastion": RequestContext("rid-1", 0.0, "1.2.3.4", "1.2.3.4")}
    await boundary(scope, None, send)
    assert sent[0]["status"] == 500
    assert b'"request_id":"rid-1"' in sent[1]["body"] and b"kaboom" not in sent[1]["body"]
