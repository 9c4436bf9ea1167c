"""Admission on a real event loop: slots, the store's backlog, and a loop that falls behind."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from respgate.config import Settings
from respgate.engine.admission import Admission
from respgate.protocol.errors import Overloaded


def _admission(*, backlog: list[int] | None = None, max_loop_lag: float = 10.0) -> Admission:
    pending = backlog if backlog is not None else [0]
    return Admission(
        max_generations=2,
        max_store_queue=3,
        max_loop_lag=max_loop_lag,
        store_backlog=lambda: pending[0],
        retry_after=2.5,
    )


async def test_a_slot_is_given_back_once_whatever_ends_the_work() -> None:
    admission = _admission()
    first, second = admission.admit(), admission.admit()
    with pytest.raises(Overloaded) as refused:
        admission.admit()
    assert refused.value.status_code == 503
    assert refused.value.headers == {"retry-after": "3", "retry-after-ms": "2500"}
    first.release()
    first.release()
    assert admission.generations == 1

    async def fails() -> asyncio.AsyncIterator[int]:
        yield 1
        raise RuntimeError("the model broke")

    batches = admission.admit().hold(fails())
    with pytest.raises(RuntimeError):
        async for _ in batches:
            pass
    assert admission.generations == 1
    second.release()
    assert admission.generations == 0


async def test_a_store_backlog_at_its_cap_refuses_new_work_until_it_shrinks() -> None:
    backlog = [3]
    admission = _admission(backlog=backlog)
    with pytest.raises(Overloaded, match="store is behind"):
        admission.check()
    backlog[0] = 2
    admission.check()


async def _stall(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - the loop is stuck on purpose: its timer runs late
    for _ in range(2):  # the late timer runs in the next iteration, after this task's wake-up
        await asyncio.sleep(0)


async def test_a_loop_that_stays_behind_refuses_new_work_until_it_catches_up() -> None:
    admission = _admission(max_loop_lag=0.1)
    admission.loop_lag.start()
    try:
        admission.check()
        # One slow step is over by the time the next request is looked at: nothing is refused.
        await _stall(0.5)
        admission.check()
        # A loop late again and again has more work than CPU.
        await _stall(0.5)
        with pytest.raises(Overloaded, match="short of CPU"):
            admission.check()
        deadline = time.monotonic() + 15
        while admission.loop_lag.seconds > 0.1:
            assert time.monotonic() < deadline, "the loop did not catch up"
            await asyncio.sleep(0.01)
        admission.check()
    finally:
        admission.loop_lag.stop()


def test_overload_settings_are_checked_at_start_up() -> None:
    assert Settings.model_validate({}).overload.max_generations > 0
    with pytest.raises(ValidationError):
        Settings.model_validate({"overload": {"max_generations": 0}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"overload": {"max_generation": 10}})
    # The store's queue counts the operations running on the pool too: it must be larger than the pool.
    with pytest.raises(ValidationError, match="max_store_queue"):
        Settings.model_validate({"overload": {"max_store_queue": 10, "store_pool_size": 10}})
