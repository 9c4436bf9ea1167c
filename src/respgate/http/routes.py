"""The endpoints: create, retrieve (JSON or SSE replay), delete, cancel, input items/tokens, models, health."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from respgate.engine.admission import Admission
from respgate.engine.background import BackgroundJobs
from respgate.engine.builder import EventBuilder
from respgate.engine.events import Event
from respgate.engine.live import UNFINISHED
from respgate.engine.router import Router
from respgate.engine.service import ResponsesService
from respgate.engine.tokens import InputTokenCounter
from respgate.http.auth import KeyChecker
from respgate.http.disconnect import ClientDisconnected, NoAnswer, unless_disconnected
from respgate.http.errors import json_response
from respgate.http.params import (
    JsonBody,
    check_include,
    flag,
    int_param,
    json_body,
    order_param,
    without_hidden_reasoning,
)
from respgate.http.sse import EventStreamResponse, frame
from respgate.protocol.errors import InvalidRequest, NotFound
from respgate.storage.base import ResponseStore

_STARTED = int(time.time())


class Routes:
    def __init__(
        self,
        *,
        service: ResponsesService,
        counter: InputTokenCounter,
        jobs: BackgroundJobs,
        store: ResponseStore,
        router: Router,
        keys: KeyChecker,
        admission: Admission,
        max_body_bytes: int,
        keepalive_seconds: float,
    ) -> None:
        self._service = service
        self._admission = admission
        self._counter = counter
        self._jobs = jobs
        self._store = store
        self._router = router
        self._keys = keys
        self._max_body = max_body_bytes
        self._keepalive = keepalive_seconds

    def _owner(self, request: Request) -> str:
        return self._keys.owner(request.headers.get("authorization"))

    async def _json_body(self, request: Request) -> JsonBody:
        return await json_body(request, max_bytes=self._max_body)

    async def create(self, request: Request) -> Response | EventStreamResponse | NoAnswer:
        owner = self._owner(request)
        # Before the body is read, so that a refusal costs as little as it can: a process short of CPU,
        # or whose store is behind, takes on no new work of any kind.
        self._admission.check()
        body = await self._json_body(request)
        prepared = await self._service.prepare(body.value, owner=owner, body_bytes=body.size)
        headers = {"x-respgate-omitted-tools": ",".join(prepared.tools.omitted)} if prepared.tools.omitted else {}
        if prepared.background:
            queued = await self._jobs.submit(prepared)
            if prepared.stream:
                # Hanging up stops following, not the work: it can be resumed with GET ?stream=true.
                followed = self._jobs.follow(prepared.response_id, owner)
                return EventStreamResponse(_framed_batches(followed), headers=headers, keepalive=self._keepalive)
            return json_response(queued, headers=headers)
        slot = self._admission.admit()
        batches = slot.hold(self._service.run(prepared))
        try:
            if prepared.stream:
                # The first batch (response.created) is awaited here, so errors before the model answers
                # are still plain HTTP errors with their own status.
                first = await unless_disconnected(request.receive, anext(batches))
            else:
                final = await unless_disconnected(request.receive, _final(batches))
        except ClientDisconnected:
            slot.release()
            return NoAnswer()
        except BaseException:
            slot.release()
            raise
        if prepared.stream:
            return EventStreamResponse(_framed(first, batches), headers=headers, keepalive=self._keepalive)
        return json_response(final, headers=headers)

    async def input_tokens(self, request: Request) -> Response:
        owner = self._owner(request)
        body = await self._json_body(request)
        count = await self._counter.count(body.value, owner=owner, body_bytes=body.size)
        return json_response({"object": "response.input_tokens", "input_tokens": count})

    async def retrieve(self, request: Request) -> Response | EventStreamResponse:
        owner = self._owner(request)
        response_id = request.path_params["response_id"]
        include = check_include(request)
        job = self._jobs.get(response_id, owner)
        if flag(request, "stream"):
            after = int_param(request, "starting_after", default=-1, minimum=-1)
            record = None if job is not None else await self._store.get(response_id, owner)
            if job is None and record is None:
                raise _not_found(response_id)
            if job is not None or (record is not None and record.status in UNFINISHED):
                # Running here (followed live), or elsewhere or waiting (followed until the store shows its end).
                followed = self._jobs.follow(response_id, owner, after)
                return EventStreamResponse(_framed_batches(followed), keepalive=self._keepalive)
            events = await self._store.events(response_id, owner)
            if events is None:
                # Only background responses keep their events (followers resume them by number); any
                # other is replayed from the response it stored.
                record = record or await self._store.get(response_id, owner)
                if record is None:
                    raise _not_found(response_id)
                obfuscate = request.query_params.get("include_obfuscation") is None or flag(
                    request, "include_obfuscation"
                )
                events = EventBuilder.replay(_visible(record.response, include), obfuscate=obfuscate)
            replay = [event for event in events if event["sequence_number"] > after]
            return EventStreamResponse(_replay(replay), keepalive=self._keepalive)
        if job is not None and (snapshot := job.snapshot()) is not None:
            return json_response(_visible(snapshot, include))
        record = await self._store.get(response_id, owner)
        if record is None:
            raise _not_found(response_id)
        return json_response(_visible(record.response, include))

    async def delete(self, request: Request) -> Response:
        owner = self._owner(request)
        response_id = request.path_params["response_id"]
        if not await self._store.delete(response_id, owner):
            raise _not_found(response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    async def cancel(self, request: Request) -> Response:
        owner = self._owner(request)
        response_id = request.path_params["response_id"]
        record = await self._store.get(response_id, owner)
        if record is None:
            raise _not_found(response_id)
        if not record.response.get("background"):
            raise InvalidRequest(
                "Only responses created with background=true can be cancelled.", param="response_id"
            )
        if record.status in UNFINISHED:
            # Wherever it runs or waits; this returns once the cancelled response is stored.
            await self._jobs.cancel(response_id, owner)
            record = await self._store.get(response_id, owner)
            if record is None:
                raise _not_found(response_id)
        return json_response(_visible(record.response, set()))

    async def input_items(self, request: Request) -> Response:
        owner = self._owner(request)
        response_id = request.path_params["response_id"]
        check_include(request)
        limit = int_param(request, "limit", default=20, minimum=1, maximum=100)
        order = order_param(request)
        record = await self._store.get(response_id, owner)
        if record is None:
            raise _not_found(response_id)
        items = list(record.input_items if order == "asc" else reversed(record.input_items))
        after = request.query_params.get("after")
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequest(f"Item with id '{after}' not found.", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0].get("id") if page else None,
                "last_id": page[-1].get("id") if page else None,
                "has_more": len(items) > limit,
            }
        )

    async def models(self, request: Request) -> Response:
        self._owner(request)
        return json_response({"object": "list", "data": [_model(name) for name in self._router.model_names]})

    async def model(self, request: Request) -> Response:
        self._owner(request)
        name = request.path_params["model"]
        return json_response(
            _model(self._router.canonical(name) if name not in self._router.model_names else name)
        )

    async def health(self, request: Request) -> Response:
        return json_response({"status": "ok"})


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "respgate"}


async def _final(batches: AsyncIterator[list[Event]]) -> dict[str, Any]:
    last: list[Event] = []
    async for batch in batches:
        last = batch
    response: dict[str, Any] = last[-1]["response"]
    return response


async def _framed(first: list[Event], batches: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    try:
        yield frame(first)
        async for batch in batches:
            yield frame(batch)
    finally:
        await batches.aclose()  # type: ignore[attr-defined]


async def _framed_batches(batches: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    async for batch in batches:
        yield frame(batch)


async def _replay(events: list[Event]) -> AsyncIterator[bytes]:
    if events:
        yield frame(events)


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


def _visible(response: dict[str, Any], include: set[str]) -> dict[str, Any]:
    """The stored response as the client may see it: reasoning blobs only when included."""
    output = response.get("output") or []
    shown = without_hidden_reasoning(output, include)
    return response if shown is output else {**response, "output": shown}
