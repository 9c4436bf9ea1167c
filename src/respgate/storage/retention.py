"""Retention: every process purges the stored responses older than `retention_days`, a batch at a time.

OpenAI keeps responses 30 days. Conversations and their items are not purged (OpenAI does not expire
them either). A chain whose older responses were purged is treated like one whose responses were
deleted: continuing it is a 400 naming the missing response, unless the request allows truncation.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from respgate.protocol.errors import ServerError
from respgate.storage.base import ResponseStore

log = logging.getLogger(__name__)

DAY = 86_400


class Retention:
    """Purges responses older than `days`: at start, then every `interval` seconds (give or take 10 %).

    Each batch is one short transaction of at most `batch` deletes (their events go by cascade). After
    each, the purge waits as long as the batch took: on SQLite every batch holds the one write lock,
    and a backlog (the first purge of a full database) must leave it free half the time for requests.
    """

    def __init__(self, store: ResponseStore, *, days: int, interval: float = 3600.0, batch: int = 200) -> None:
        self._store = store
        self._days = days
        self._interval = interval
        self._batch = batch

    async def purge_once(self, *, now: float | None = None) -> int:
        """Delete every finished response created more than `days` before `now`; how many."""
        before = int((time.time() if now is None else now) - self._days * DAY)
        purged = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            deleted = await self._store.purge(before=before, limit=self._batch)
            purged += deleted
            if deleted < self._batch:
                return purged
            await asyncio.sleep(loop.time() - started)

    async def run(self) -> None:
        """Purge until cancelled; a failed round is logged and tried again at the next."""
        while True:
            try:
                purged = await self.purge_once()
            except ServerError:
                log.warning("purging responses older than %d days failed", self._days, exc_info=True)
            else:
                if purged:
                    log.info("purged %d responses older than %d days", purged, self._days)
            # Spread so that processes started together do not purge in step.
            await asyncio.sleep(self._interval * random.uniform(0.9, 1.1))
