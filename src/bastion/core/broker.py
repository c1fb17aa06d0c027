"""The message broker connection (RabbitMQ through aio-pika), shared by modules that publish or consume.

One robust connection per worker, opened on first use and re-opened by aio-pika after a failure; its
``ping`` is the readiness check when ``BASTION_AMQP_URL`` is set. aio-pika is imported only when a
broker is configured.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Broker:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._connection: Any = None
        self._lock = asyncio.Lock()

    async def connection(self) -> Any:
        """The open robust connection, connecting first if needed."""
        if self._connection is not None and not self._connection.is_closed:
            return self._connection
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                import aio_pika

                self._connection = await aio_pika.connect_robust(self.url, timeout=self.timeout)
            return self._connection

    async def ping(self) -> None:
        connection = await self.connection()
        if connection.is_closed:
            raise ConnectionError("broker connection is closed")

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
