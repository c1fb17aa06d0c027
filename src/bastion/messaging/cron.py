"""``POST /cron/{job}``: run one messaging job now, for an external scheduler (the seed's Vercel-cron style).

    curl -X POST -H "Authorization: Bearer $BASTION_MESSAGING__CRON_SECRET" https://…/cron/messaging.redrive

The secret is compared in constant time; without a configured secret the route answers 404 (it does not
exist), a wrong or missing one 401. The jobs are the ones the descriptor declares (they also run on their own
schedule in core's job loop); running one twice at once is harmless (each is a conditional SQL statement).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping

from bastion.core.errors import Unauthorized
from bastion.messaging.errors import UnknownJob


class CronJobs:
    def __init__(self, secret: str | None, jobs: Mapping[str, Callable[[], Awaitable[object]]]) -> None:
        self._secret = secret.encode() if secret else None
        self.jobs = dict(jobs)

    async def run(self, name: str, authorization: str | None) -> object:
        if self._secret is None:
            raise UnknownJob("Cron endpoints are off (no cron secret is configured).")
        given = (authorization or "").removeprefix("Bearer ").encode()
        if not authorization or not hmac.compare_digest(given, self._secret):
            raise Unauthorized("A valid cron secret is required.", headers={"WWW-Authenticate": 'Bearer realm="cron"'})
        job = self.jobs.get(name)
        if job is None:
            raise UnknownJob(f"No job {name!r}; known: {', '.join(sorted(self.jobs))}.")
        return await job()
