"""The visitors module's descriptor: sites, visitors, visits and passes at the gate, sending through the
messaging module's :class:`~bastion.messaging.service.Messaging` (listed before it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.visitors.settings import VisitorsSettings

if TYPE_CHECKING:
    from bastion.settings import Settings

JOBS = ("reminders", "expire", "no_shows", "digest", "purge")


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.jobs.spec import Job, Periodic
    from bastion.messaging.service import Messaging
    from bastion.visitors.files import files_for
    from bastion.visitors.gate import Gate
    from bastion.visitors.jobs import VisitorsJobs
    from bastion.visitors.notify import Notifier
    from bastion.visitors.passes import Passes
    from bastion.visitors.people import People
    from bastion.visitors.router import route_handlers
    from bastion.visitors.sites import Sites
    from bastion.visitors.uploads import Uploads
    from bastion.visitors.visits import Visits

    platform, config = ctx.platform, ctx.settings.visitors
    notifier = Notifier(ctx.require(Messaging), config.templates)
    files = files_for(config.storage, ctx.settings.data_dir)
    sites = Sites(platform.db)
    people = People(platform.db, files)
    visits = Visits(platform.db, notifier, config)
    gate = Gate(visits)
    uploads = Uploads(platform.db, files, config)
    jobs = VisitorsJobs(platform.db, notifier, files, config)
    every = {"reminders": 60.0, "expire": 300.0, "no_shows": 300.0, "digest": 300.0, "purge": 3600.0}
    declared: list[Job] = [
        Periodic(name=f"visitors.{name}", every=every[name], run=getattr(jobs, name), once_per_cluster=True)
        for name in JOBS
    ]

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    upload_policy = RoutePolicy(tier="visitors_upload", max_body_bytes=config.max_upload_bytes, media_types=())
    return ModuleParts(
        route_handlers=route_handlers,  # the jobs are at core's POST /cron/{job} (BASTION_CRON_SECRET)
        route_groups=[
            RouteGroup("/api/sites", RoutePolicy(tier="general", max_body_bytes=16 * 1024)),
            RouteGroup("/api/visitors", RoutePolicy(tier="general", max_body_bytes=16 * 1024)),
            RouteGroup("/api/visitors/{id}/{kind}", upload_policy, methods={"PUT"}),
            RouteGroup("/api/visits", RoutePolicy(tier="general", max_body_bytes=16 * 1024)),
            RouteGroup("/api/visits/{id}/check-in", RoutePolicy(tier="visitors_gate", max_body_bytes=4096)),
            RouteGroup("/api/visits/{id}/check-out", RoutePolicy(tier="visitors_gate", max_body_bytes=4096)),
            RouteGroup("/passes", RoutePolicy(tier="general", max_body_bytes=0), methods={"GET"}),
        ],
        dependencies={
            "visitors_sites": provide(sites),
            "visitors_people": provide(people),
            "visitors_visits": provide(visits),
            "visitors_gate": provide(gate),
            "visitors_uploads": provide(uploads),
            "visitors_jobs": provide(jobs),
            "visitors_passes": provide(Passes(platform.db)),
        },
        jobs=declared,
    )


MODULE: Module[Settings] = Module(
    name="visitors",
    settings=VisitorsSettings,
    models="bastion.visitors.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("visitors_gate", "1200/minute"), Quota("visitors_upload", "30/minute")],
    build=build,
)
