"""The core services of one app instance, built once by ``create_app`` and handed to every module.

    platform = Platform.build(settings, version="1.0", tiers=tier_rates(settings, MODULES))
    platform.db          # SQL database (SQLite | PostgreSQL)
    platform.store       # fast key-value store (memory | Redis)
    platform.limiter     # rate limits and bans
    platform.keyring     # encryption at rest
    platform.http        # pooled outbound HTTP clients
    platform.lifecycle   # readiness, drain, background jobs
    platform.health      # probes
    platform.reports     # the slow-routes and memory-trend reports (a core job makes one per window)

Nothing here connects at build time; connections open lazily and ``start``/``stop`` run in the
app's lifespan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bastion.core import metrics
from bastion.core.broker import Broker
from bastion.core.crypto import Keyring
from bastion.core.db import Database
from bastion.core.health import Health, HealthCheck
from bastion.core.http import HttpClients
from bastion.core.lifecycle import Lifecycle
from bastion.core.logging import get_logger
from bastion.core.observability.reports import Reports
from bastion.core.ratelimit import Limiter, MemoryRateLimitBackend, RateLimitBackend, Tier
from bastion.core.settings import CoreSettings, Rate
from bastion.core.stores import MemoryStore, Store

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bastion.core.observability.tracing import Tracing

log = get_logger("bastion.platform")


class Platform:
    # A plain class, not a dataclass: Litestar hands it to handlers through msgspec, which would
    # otherwise inspect (and on every request, convert) a dataclass field by field.
    def __init__(
        self,
        *,
        settings: CoreSettings,
        version: str,
        lifecycle: Lifecycle,
        db: Database,
        store: Store,
        redis: aioredis.Redis | None,
        limiter: Limiter,
        keyring: Keyring,
        http: HttpClients,
        health: Health,
        http_metrics: metrics.HttpMetrics,
        broker: Broker | None = None,
        reports: Reports | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.version = version
        self.lifecycle = lifecycle
        self.db = db
        self.store = store
        self.redis = redis
        self.limiter = limiter
        self.keyring = keyring
        self.http = http
        self.health = health
        self.http_metrics = http_metrics
        self.broker = broker
        self.reports = reports
        self.tracing = tracing

    @classmethod
    def build(
        cls, settings: CoreSettings, *, version: str, tiers: Mapping[str, tuple[Rate, bool]] | None = None
    ) -> Platform:
        """``tiers``: each rate-limit tier's rate and whether it fails closed (``core.module.tier_rates``);
        by default only the configured ones, failing open."""
        lifecycle = Lifecycle(
            grace_seconds=settings.shutdown_grace_seconds,
            memory_warn_mb=settings.memory_warn_mb,
            memory_check_seconds=settings.memory_check_seconds,
        )
        database = Database.from_settings(settings)
        tracing: Tracing | None = None
        if settings.otel.endpoint is not None:
            # imported only here: without an endpoint nothing of OpenTelemetry is loaded
            from bastion.core.observability.tracing import Tracing

            tracing = Tracing(settings.otel, version=version, trusted_proxies=settings.trusted_proxies)
            tracing.instrument_engine(database.engine)
        redis_client: aioredis.Redis | None = None
        admission_client: aioredis.Redis | None = None
        store: Store
        max_clients = settings.admission.memory_max_clients
        backend: RateLimitBackend = MemoryRateLimitBackend(max_clients=max_clients)
        if settings.redis_url is not None:
            # imported here: a worker without Redis never loads redis-py
            from bastion.core.ratelimit.redis import RedisRateLimitBackend
            from bastion.core.stores.redis import RedisStore, connect

            url = settings.redis_url.get_secret_value()
            redis_client = connect(url, timeout=2.0)
            # Admission gets its own pool with a short timeout: a slow Redis must cost a request at
            # most ``store_timeout_seconds`` before the tier's fail-open/closed policy applies.
            admission_client = connect(url, timeout=settings.admission.store_timeout_seconds)
            store = RedisStore(redis_client, prefix=settings.redis_prefix)
            backend = RedisRateLimitBackend(admission_client, prefix=settings.redis_prefix)
        else:
            store = MemoryStore()

        if tracing is not None and settings.otel.trace_store:
            from bastion.core.observability.traced_store import TracedStore

            store = TracedStore(store, tracing, "redis" if redis_client is not None else "memory")
        if tiers is None:
            tiers = {name: (rate, False) for name, rate in settings.rate_limits.tiers().items()}
        limiter = Limiter(
            backend, build_tiers(settings, tiers), deny_cache=settings.admission.deny_cache, max_clients=max_clients
        )

        reports = Reports(
            settings.reports, memory_warn_bytes=settings.memory_warn_mb * 1_048_576, rss=metrics.update_process_metrics
        )
        health = Health(lifecycle, version=version, reports=reports.snapshot if settings.reports.enabled else None)
        health.add(HealthCheck("database", database.ping))
        if redis_client is not None:
            health.add(HealthCheck("redis", store.ping))
        broker = Broker(settings.amqp_url.get_secret_value()) if settings.amqp_url is not None else None
        if broker is not None:
            health.add(HealthCheck("broker", broker.ping, component_type="component"))

        platform = cls(
            settings=settings,
            version=version,
            lifecycle=lifecycle,
            db=database,
            store=store,
            redis=redis_client,
            limiter=limiter,
            keyring=Keyring.from_settings(settings.crypto, settings.data_dir),
            http=HttpClients(inject=tracing.inject if tracing is not None else None),
            health=health,
            http_metrics=metrics.HttpMetrics(reports.routes if settings.reports.enabled else None),
            broker=broker,
            reports=reports,
            tracing=tracing,
        )
        lifecycle.on_close("database", database.close)
        if tracing is not None:
            lifecycle.on_close("tracing", tracing.close)  # exports the spans still queued
        lifecycle.on_close("http-clients", platform.http.close)
        if broker is not None:
            lifecycle.on_close("broker", broker.close)
        for client in (redis_client, admission_client):
            if client is not None:
                lifecycle.on_close("redis", _closer(client))
        return platform


def build_tiers(settings: CoreSettings, rates: Mapping[str, tuple[Rate, bool]]) -> dict[str, Tier]:
    admission = settings.admission
    return {
        name: Tier(
            name=name,
            limit=rate.limit,
            window=rate.window,
            ban_threshold=int(rate.limit * admission.ban_multiplier) if admission.ban_multiplier else 0,
            ban_seconds=admission.ban_seconds,
            fail_closed=fail_closed,
        )
        for name, (rate, fail_closed) in rates.items()
    }


def _closer(client: aioredis.Redis) -> Any:
    async def close() -> None:
        await client.aclose()

    return close
