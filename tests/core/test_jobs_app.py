"""Jobs in a running app: collected from the modules' descriptors, run after start-up with a log line, one run
of a cluster job across two apps, and the admin routes over the run log (signed in through identity)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bastion.app import Bastion, create_app
from bastion.core.jobs.runner import JobRunner
from bastion.core.jobs.spec import Job, Periodic
from bastion.core.module import Module, ModuleParts
from bastion.settings import Settings
from tests.conftest import serve
from tests.identity.conftest import FAST_ARGON, PASSWORD, bearer, register, service_of

IDENTITY = {**FAST_ARGON, "bootstrap_owner": False}


def _module(*jobs: Job) -> Module[Any]:
    return Module(name="test-jobs", build=lambda _ctx: ModuleParts(jobs=jobs))


class Counter:
    def __init__(self, *results: object) -> None:
        self.results = list(results)
        self.count = 0

    async def __call__(self) -> object:
        self.count += 1
        result = self.results.pop(0) if self.results else None
        if isinstance(result, BaseException):
            raise result
        return result


def runner_of(app: Bastion) -> JobRunner:
    runner: JobRunner = app.litestar.state.jobs
    return runner


async def _ran(app: Bastion, name: str, runs: int = 1) -> None:
    runner = runner_of(app)
    async with asyncio.timeout(10):
        await runner.until(lambda: runner.states[name].runs + runner.states[name].skipped >= runs)


async def _admin_token(app: Bastion, http: Any) -> str:
    await service_of(app).accounts.create_user(email="admin@example.com", password=PASSWORD, role="admin")
    response = await http.post("/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
    token: str = response.json()["access_token"]
    return token


def test_the_app_runs_the_jobs_of_every_module_and_its_own(make_settings: Callable[..., Settings]):
    """The runner holds the test module's job, the secrets purge (on one instance) and the run-log pruning."""
    app = create_app(make_settings(), extra_modules=[_module(Periodic(name="t.mine", every=5.0, run=Counter()))])
    jobs = runner_of(app).jobs
    assert {"t.mine", "secrets.purge", "core.prune-job-runs"} <= set(jobs)
    purge = jobs["secrets.purge"]
    assert isinstance(purge, Periodic) and purge.once_per_cluster and purge.every == 60.0


def test_a_job_name_two_modules_declare_fails_the_build(make_settings: Callable[..., Settings]):
    """A module declaring a job under a name already taken (here the secrets purge's) stops create_app."""
    clash = _module(Periodic(name="secrets.purge", every=5.0, run=Counter()))
    with pytest.raises(ValueError, match=r"secrets\.purge"):
        create_app(make_settings(), extra_modules=[clash])


async def test_a_declared_job_runs_after_start_up_with_one_log_line(make_settings, logs):
    """A run_at_start job runs once the app is up, and its run is one ``job run`` line with its count."""
    app = create_app(
        make_settings(),
        extra_modules=[_module(Periodic(name="t.count", every=3600.0, run=Counter(3), run_at_start=True))],
    )
    async with serve(app):
        await _ran(app, "t.count")
    [line] = [entry for entry in logs() if entry.get("event") == "job run" and entry.get("job") == "t.count"]
    assert line["outcome"] == "ok" and line["result"] == 3 and isinstance(line["duration_ms"], int)
    assert line["level"] == "info"


@pytest.fixture(params=["redis", pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def shared(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What two apps share: one Redis (leases there), one PostgreSQL database, or one SQLite file."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    if request.param == "postgres":
        return {"database_url": request.getfixturevalue("postgres_url"), "auto_migrate": True}
    return {}


async def test_a_cluster_job_runs_on_exactly_one_of_two_apps(make_settings, shared):
    """Two apps sharing their store or database both reach a once_per_cluster job's due time; one runs it."""
    counters = [Counter(), Counter()]
    apps = [
        create_app(
            make_settings(**shared),
            extra_modules=[
                _module(Periodic(name="t.cluster", every=3600.0, once_per_cluster=True, run=c, run_at_start=True))
            ],
        )
        for c in counters
    ]
    async with serve(apps[0]), serve(apps[1]):
        for app in apps:
            await _ran(app, "t.cluster")
    assert sorted(c.count for c in counters) == [0, 1]
    assert sorted(runner_of(app).states["t.cluster"].skipped for app in apps) == [0, 1]


# -- the admin routes -------------------------------------------------------------------------------------


def _admin_app(make_settings: Callable[..., Settings]) -> Bastion:
    jobs = (
        Periodic(name="t.count", every=3600.0, run=Counter(3), run_at_start=True),
        Periodic(name="t.broken", every=3600.0, run=Counter(RuntimeError("password=hunter2")), run_at_start=True),
    )
    return create_app(make_settings(identity=IDENTITY), extra_modules=[_module(*jobs)])


async def test_the_jobs_view_needs_a_signed_in_caller(make_settings):
    """GET /admin/jobs and a job's runs answer 401 to an anonymous caller."""
    async with serve(_admin_app(make_settings)) as http:
        listed = await http.get("/admin/jobs")
        runs = await http.get("/admin/jobs/t.count/runs")
    assert (listed.status_code, runs.status_code) == (401, 401)
    assert listed.json()["code"] == "UNAUTHORIZED"


async def test_the_jobs_view_is_refused_to_a_plain_user(make_settings):
    """A signed-in user without the owner or admin role gets 403 FORBIDDEN."""
    async with serve(_admin_app(make_settings)) as http:
        user = await register(http)
        listed = await http.get("/admin/jobs", headers=bearer(user["access_token"]))
        runs = await http.get("/admin/jobs/t.count/runs", headers=bearer(user["access_token"]))
    assert (listed.status_code, runs.status_code) == (403, 403)
    assert listed.json()["code"] == "FORBIDDEN"


async def test_an_admin_sees_every_job_with_its_last_runs(make_settings):
    """The list names each job's schedule and its last run, success and failure (the error's class only)."""
    app = _admin_app(make_settings)
    async with serve(app) as http:
        await _ran(app, "t.count")
        await _ran(app, "t.broken")
        token = await _admin_token(app, http)
        response = await http.get("/admin/jobs", headers=bearer(token))
    assert response.status_code == 200
    assert "hunter2" not in response.text
    jobs = {job["name"]: job for job in response.json()}
    count, broken, purge = jobs["t.count"], jobs["t.broken"], jobs["secrets.purge"]
    assert (count["kind"], count["schedule"], count["every_seconds"], count["once_per_cluster"]) == (
        "periodic",
        "every 3600s",
        3600.0,
        False,
    )
    assert count["last_run"]["outcome"] == "ok" and count["last_run"]["result"] == 3
    assert count["last_success"] == count["last_run"] and count["last_failure"] is None
    assert broken["last_failure"]["outcome"] == "failed" and broken["last_failure"]["error"] == "RuntimeError"
    assert broken["last_success"] is None
    assert purge["once_per_cluster"] is True and purge["last_run"] is None and purge["next_due_at"] is not None


async def test_an_admin_reads_a_jobs_recent_runs(make_settings):
    """GET /admin/jobs/{name}/runs lists the runs newest first; an undeclared job is 404."""
    app = _admin_app(make_settings)
    async with serve(app) as http:
        await _ran(app, "t.count")
        token = await _admin_token(app, http)
        runs = await http.get("/admin/jobs/t.count/runs?limit=5", headers=bearer(token))
        unknown = await http.get("/admin/jobs/t.nothing/runs", headers=bearer(token))
    assert runs.status_code == 200
    [run] = runs.json()
    assert (run["job"], run["outcome"], run["result"], run["error"]) == ("t.count", "ok", 3, None)
    assert run["worker"] == runner_of(app).holder and run["started_at"] <= run["finished_at"]
    assert unknown.status_code == 404


@pytest.mark.parametrize("limit", ["0", "201", "many"])
async def test_the_runs_limit_is_bounded(make_settings, limit):
    """A limit outside 1..200 (or not a number) is refused with 422 VALIDATION_FAILED."""
    app = _admin_app(make_settings)
    async with serve(app) as http:
        token = await _admin_token(app, http)
        response = await http.get(f"/admin/jobs/t.count/runs?limit={limit}", headers=bearer(token))
    assert response.status_code == 422 and response.json()["code"] == "VALIDATION_FAILED"


async def test_the_jobs_routes_are_typed_in_the_openapi_schema(make_settings):
    """Both routes answer arrays of named schemas (JobView, JobRunView) in /schema/openapi.json."""
    async with serve(create_app(make_settings())) as http:
        schema = (await http.get("/schema/openapi.json")).json()
    for path, name in (("/admin/jobs", "JobView"), ("/admin/jobs/{name}/runs", "JobRunView")):
        answer = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["type"] == "array" and answer["items"]["$ref"] == f"#/components/schemas/{name}"
    properties = schema["components"]["schemas"]["JobView"]["properties"]
    assert {"name", "schedule", "once_per_cluster", "last_run", "last_success", "last_failure"} <= set(properties)
