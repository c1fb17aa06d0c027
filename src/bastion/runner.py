"""The servers, told to drain the app the moment a shutdown signal arrives.

Neither server calls the app's lifespan shutdown before its connections have closed: uvicorn waits
for every connection first (Kludex/uvicorn#451), and granian's worker stops listening, waits for its
connection tasks and only then runs the lifespan shutdown. An open stream would therefore hold the
worker until the grace period runs out and it is killed. So, in each worker, the signal itself first
turns readiness off and tells streams to finish, then lets the server shut down as usual.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn


def run_uvicorn(config: uvicorn.Config) -> None:
    """Serve ``config`` in this process with a uvicorn server that drains on the signal.

    uvicorn is imported here, not at the top: granian's workers import this module too, and need not
    carry uvicorn (4 MB of resident memory) when it is not the server."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            _begin_drain_all()
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal once it has shut down, so the process would die of SIGTERM
            # (exit status -15) after a clean drain; for `bastion serve` a drained shutdown exits 0.
            self._captured_signals.clear()

    DrainingServer(config).run()


def load_app(target: str) -> Any:
    """Build the app from its factory (``"module:factory"``) in a worker, draining on SIGTERM/SIGINT.

    Granian's ``target_loader``; for uvicorn, ``functools.partial(load_app, target)`` is the factory.
    """
    from granian._internal import load_target  # what granian's own loader calls (it puts cwd on sys.path)

    app = load_target(target, factory=True)
    litestar = getattr(app, "litestar", None)
    if litestar is not None:
        # A startup hook runs after the server has installed its own signal handlers in the worker.
        litestar.on_startup.append(drain_on_signals)
    return app


def drain_on_signals() -> None:
    """Begin draining this process's apps when SIGTERM or SIGINT arrives, keeping the server's handling.

    Granian's worker handles the signals through ``loop.add_signal_handler``, which dispatches from the
    loop's wake-up fd; a Python-level handler installed here runs as well, and the one it replaces
    (asyncio's no-op there, uvicorn's ``handle_exit``) is still called.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread; a server running the app elsewhere handles them
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(_begin_drain_all)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)
        signal.siginterrupt(sig, False)  # as asyncio sets it: no EINTR in the server's threads


def _begin_drain_all() -> None:
    # Imported here, where the app is already loaded: granian's supervisor process imports this
    # module too, and must not load the app (nor prometheus_client) itself.
    from bastion.app import begin_drain_all

    begin_drain_all()
