"""Identity's background work is declared: last-used times written by every worker, ended sessions purged by one."""

from __future__ import annotations

from bastion.core.jobs.runner import JobRunner
from bastion.core.jobs.spec import Periodic


def test_identity_declares_its_two_jobs(identity_app):
    """flush-touches runs in every worker at the touch interval, without filling the run log; the session
    purge runs hourly on one instance of the cluster."""
    app = identity_app(identity={"touch_interval_seconds": 7.0})
    runner: JobRunner = app.litestar.state.jobs
    flush, purge = runner.jobs["identity.flush-touches"], runner.jobs["identity.purge-sessions"]
    assert isinstance(flush, Periodic) and flush.every == 7.0
    assert not flush.once_per_cluster and not flush.record_success
    assert isinstance(purge, Periodic) and purge.every == 3600.0 and purge.once_per_cluster
