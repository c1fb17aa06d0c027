"""``POST /cron/{job}``: any declared job run now by an external scheduler, behind BASTION_CRON_SECRET; the run
in the run log, a cluster job's lease respected; the secret required (and strong) in production."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from bastion.app import Bastion, create_app
from bastion.cli import main
from bastion.core.jobs.spec import Periodic
from bastion.core.module import tier_rates
from bastion.core.settings import Rate, weak_secret
from bastion.modules import MODULES
from bastion.settings import Settings
from tests.conftest import serve
from tests.core.test_jobs_app import Counter, _module, runner_of

SECRET = secrets.token_urlsafe(32)
AUTH = {"Authorization": f"Bearer {SECRET}"}
PRODUCTION = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "allowed_hosts": ["api.example.com"],
    "security_contact": "mailto:s@example.com",
}


class Slow:
    """A job that runs until it is released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.active = self.most_active = 0

    async def __call__(self) -> int:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.started.set()
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        return 1


def _app(make_settings: Callable[..., Settings], *jobs: Any, **overrides: Any) -> Bastion:
    return create_app(make_settings(cron_secret=SECRET, **overrides), extra_modules=[_module(*jobs)])


async def test_the_secret_guards_the_route_before_the_jobs_name(make_settings):
    """No secret, a wrong one, or the right one under another scheme: 401 with WWW-Authenticate, and the job
    does not run; an unknown job is a 404 problem only for a caller with the secret."""
    counter = Counter()
    app = _app(make_settings, _periodic("t.count", counter))
    async with serve(app) as http:
        answers = [
            await http.post("/cron/t.count"),
            await http.post("/cron/t.count", headers={"Authorization": "Bearer nope"}),
            await http.post("/cron/t.count", headers={"Authorization": f"Basic {SECRET}"}),
            await http.post("/cron/t.count", headers={"Authorization": f"Bearer {SECRET[:-1]}"}),
            await http.post("/cron/nothing", headers={"Authorization": "Bearer nope"}),
        ]
        unknown = await http.post("/cron/nothing", headers=AUTH)
    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == 'Bearer realm="cron"'
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert counter.count == 0
    assert unknown.status_code == 404 and unknown.json()["code"] == "JOB_NOT_FOUND"
    assert "nothing" in unknown.json()["detail"]


async def test_a_run_answers_its_count_and_is_in_the_run_log(make_settings):
    """The right secret runs the job once and answers its count; the run is in the run log even for a job that
    keeps its scheduled successes out of it, and a scheme in lower case is accepted."""
    counter = Counter(7)
    app = _app(make_settings, _periodic("t.count", counter, record_success=False))
    async with serve(app) as http:
        ran = await http.post("/cron/t.count", headers={"Authorization": f"bearer {SECRET}"})
        runs = await runner_of(app).run_log.recent("t.count", 10)
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert body["job"] == "t.count" and body["outcome"] == "ok" and body["result"] == 7
    assert isinstance(body["duration_ms"], int) and counter.count == 1
    assert [(run.outcome, run.result, run.worker) for run in runs] == [("ok", 7, runner_of(app).holder)]


async def test_a_failed_run_is_a_500_problem_and_recorded(make_settings):
    """A job that raises: 500 JOB_FAILED naming the exception class only (never its message), recorded failed."""
    app = _app(make_settings, _periodic("t.broken", Counter(RuntimeError("password=hunter2"))))
    async with serve(app) as http:
        failed = await http.post("/cron/t.broken", headers=AUTH)
        runs = await runner_of(app).run_log.recent("t.broken", 10)
    assert failed.status_code == 500 and failed.json()["code"] == "JOB_FAILED"
    assert "RuntimeError" in failed.json()["detail"] and "hunter2" not in failed.text
    assert [(run.outcome, run.error) for run in runs] == [("failed", "RuntimeError")]


async def test_a_run_past_its_timeout_is_a_504_problem(make_settings):
    """A run longer than the job's timeout is cancelled, answered 504 JOB_TIMEOUT and recorded as a timeout."""
    slow = Slow()
    app = _app(make_settings, _periodic("t.slow", slow, timeout=0.2))
    async with serve(app) as http:
        answer = await http.post("/cron/t.slow", headers=AUTH)
        runs = await runner_of(app).run_log.recent("t.slow", 10)
    assert answer.status_code == 504 and answer.json()["code"] == "JOB_TIMEOUT"
    assert [run.outcome for run in runs] == ["timeout"]


async def test_a_cluster_job_whose_lease_another_instance_holds_is_a_409(make_settings):
    """A once_per_cluster job whose lease is held elsewhere is not run: 409 JOB_BUSY saying so; once the lease
    is free, the route takes it and runs the job."""
    counter = Counter(1)
    app = _app(make_settings, _periodic("t.cluster", counter, once_per_cluster=True))
    async with serve(app) as http:
        runner = runner_of(app)
        assert await runner.leases.acquire("t.cluster", "other-instance", 30.0)
        busy = await http.post("/cron/t.cluster", headers=AUTH)
        await runner.leases.release("t.cluster", "other-instance")
        ran = await http.post("/cron/t.cluster", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["code"] == "JOB_BUSY"
    assert "another instance holds its lease" in busy.json()["detail"]
    assert ran.status_code == 200 and counter.count == 1


async def test_a_job_running_in_this_instance_is_a_409(make_settings):
    """While a run is in progress here, a second request for the same job is refused, not run twice."""
    slow = Slow()
    app = _app(make_settings, _periodic("t.slow", slow))
    async with serve(app) as http:
        first = asyncio.create_task(http.post("/cron/t.slow", headers=AUTH))
        async with asyncio.timeout(5):
            await slow.started.wait()
        second = await http.post("/cron/t.slow", headers=AUTH)
        slow.release.set()
        done = await first
    assert second.status_code == 409 and second.json()["code"] == "JOB_BUSY"
    assert done.status_code == 200 and done.json()["result"] == 1


async def test_a_due_time_during_a_run_now_is_skipped_not_run_twice(make_settings):
    """The job's own loop reaching its due time while the route runs it skips that time: never two runs at once."""
    slow = Slow()
    app = _app(make_settings, Periodic(name="t.slow", every=1.0, jitter=0.0, run=slow))
    async with serve(app) as http:
        runner = runner_of(app)
        first = asyncio.create_task(http.post("/cron/t.slow", headers=AUTH))
        async with asyncio.timeout(5):
            await slow.started.wait()
            await runner.until(lambda: runner.states["t.slow"].skipped >= 1)
        slow.release.set()
        done = await first
    assert done.status_code == 200 and slow.most_active == 1


async def test_without_a_secret_the_route_answers_404(make_settings):
    """In development with no secret the route is off: 404 whatever is sent."""
    counter = Counter()
    app = create_app(make_settings(), extra_modules=[_module(_periodic("t.count", counter))])
    async with serve(app) as http:
        answer = await http.post("/cron/t.count", headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 404 and counter.count == 0


async def test_the_route_takes_a_tiny_body_only_and_is_in_the_openapi_schema(make_settings):
    """A body over 256 bytes is refused before anything runs; the route is documented in /schema/openapi.json."""
    counter = Counter()
    app = _app(make_settings, _periodic("t.count", counter))
    async with serve(app) as http:
        big = await http.post("/cron/t.count", headers=AUTH, content=b"x" * 1024)
        schema = (await http.get("/schema/openapi.json")).json()
    assert big.status_code == 413 and counter.count == 0
    operation = schema["paths"]["/cron/{job}"]["post"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"] == "#/components/schemas/CronRun"


def test_the_cron_tier_is_the_cores_and_fails_closed(make_settings):
    """Tier ``cron``: 60/minute by default, refusing requests while the limiter's store is down."""
    assert tier_rates(make_settings(), MODULES)["cron"] == (Rate(60, 60), True)


# -- the secret in the configuration ------------------------------------------------------------------------


def _cron_problems(**values: Any) -> list[tuple[str, str]]:
    problems = Settings(_env_file=None, **values).problems()
    return [(p.severity, p.message) for p in problems if p.setting == "BASTION_CRON_SECRET"]


@pytest.mark.parametrize("weak", ["s" * 40, secrets.token_urlsafe(16), "ab" * 20])
def test_production_needs_a_strong_secret(weak):
    """Production: a missing, short or repetitive secret is an error naming BASTION_CRON_SECRET, the expected
    form and how to make one; a strong one is no problem."""
    assert _cron_problems(**PRODUCTION) == [
        ("error", "not set; set at least 32 random characters, e.g. `bastion new-cron-secret`")
    ]
    [(severity, message)] = _cron_problems(**PRODUCTION, cron_secret=weak)
    assert severity == "error" and message.startswith("too weak; set at least 32 random characters")
    assert _cron_problems(**PRODUCTION, cron_secret=SECRET) == []


def test_development_warns_of_a_weak_secret_and_is_quiet_without_one():
    """Development: no secret is fine (the route is off); a weak one is a warning."""
    assert _cron_problems() == []
    assert [severity for severity, _ in _cron_problems(cron_secret="short")] == ["warning"]


def test_production_refuses_to_start_without_the_secret(tmp_path):
    """create_app in production without the secret stops, the message naming the variable."""
    settings = Settings(_env_file=None, **PRODUCTION, data_dir=tmp_path)
    with pytest.raises(SystemExit, match="BASTION_CRON_SECRET"):
        create_app(settings)


def test_the_old_messaging_variable_is_an_error_naming_the_new_one(monkeypatch):
    """BASTION_MESSAGING__CRON_SECRET is not silently ignored: the settings fail, pointing to BASTION_CRON_SECRET."""
    monkeypatch.setenv("BASTION_MESSAGING__CRON_SECRET", SECRET)
    with pytest.raises(ValidationError, match="set BASTION_CRON_SECRET"):
        Settings(_env_file=None)


def test_new_cron_secret_prints_a_strong_secret():
    """``bastion new-cron-secret`` prints a fresh secret that the production check accepts."""
    made = [CliRunner().invoke(main, ["new-cron-secret"]) for _ in range(2)]
    assert all(result.exit_code == 0 for result in made)
    first, second = (result.output.strip() for result in made)
    assert first != second and not weak_secret(first)
    assert _cron_problems(**PRODUCTION, cron_secret=first) == []


def _periodic(name: str, run: Any, **options: Any) -> Periodic:
    return Periodic(name=name, every=3600.0, run=run, **options)
