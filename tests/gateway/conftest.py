"""Fixtures for gateway tests: fake upstreams started per test, and a gateway over one of them.

The gateway itself comes from the shared `make_app` fixture (a real app on a temporary SQLite
database, reached with the official SDK through httpx's ASGI transport).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.upstreams import KINDS, Single, Upstreams, entry


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    pool = Upstreams()
    yield pool
    await pool.aclose()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest_asyncio.fixture
async def single(kind: str, upstreams: Upstreams, make_app: Any) -> Single:
    fake = await upstreams.start(kind)
    app = await make_app([entry(kind, fake)])
    return Single(kind=kind, fake=fake, app=app, client=app.client())
