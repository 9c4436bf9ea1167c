"""Creating a response: validate, build the context, pick a deployment, stream through the builder, store."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from respgate.config import Limits
from respgate.engine.builder import EventBuilder
from respgate.engine.context import for_model
from respgate.engine.events import Event
from respgate.engine.history import ContextLoader, conversation_of
from respgate.engine.intake import Intake, LoopTurns, checked
from respgate.engine.keeping import Keeper
from respgate.engine.prepared import Prepared
from respgate.engine.response import base_response
from respgate.engine.router import Deployment, Router
from respgate.protocol.errors import (
    APIError,
    GenerationFailed,
    InvalidRequest,
    RateLimited,
    ServerError,
    UpstreamError,
    log_safe,
    log_safe_trace,
)
from respgate.protocol.ids import new_id
from respgate.protocol.request import CreateResponse
from respgate.providers.base import Delta, ModelCall
from respgate.storage.base import ConversationStore, ResponseStore

log = logging.getLogger(__name__)


class _Started:
    """A provider stream whose first delta has arrived: from here on, failures are reported in-stream."""

    def __init__(
        self, deployment: Deployment, call: ModelCall, stream: AsyncIterator[Delta], first: Delta | None
    ) -> None:
        self.deployment = deployment
        self.call = call
        self.stream = stream
        self.first = first


def _check_combinations(request: CreateResponse) -> None:
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "Invalid value for 'stream_options': only allowed when 'stream' is true.", param="stream_options"
        )
    if request.previous_response_id is not None and request.conversation is not None:
        raise InvalidRequest(
            "'previous_response_id' cannot be used in conjunction with 'conversation'.",
            param="previous_response_id",
        )
    if request.background and request.store is False:
        raise InvalidRequest(
            "Background mode requires 'store' to be true: a background response is fetched later by its id.",
            param="background",
        )
    if request.prompt is not None:
        raise InvalidRequest("Stored prompt templates are not supported by this server.", param="prompt")
    if request.top_logprobs or (request.include and "message.output_text.logprobs" in request.include):
        raise InvalidRequest("Log probabilities are not supported by this server.", param="top_logprobs")


class ResponsesService:
    def __init__(
        self,
        *,
        store: ResponseStore,
        conversations: ConversationStore,
        router: Router,
        max_context_bytes: int,
        regenerate_once: bool = True,
        omit_unsupported_tools: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self._keeper = Keeper(store=store, conversations=conversations)
        self._context = ContextLoader(responses=store, conversations=conversations, max_bytes=max_context_bytes)
        self._router = router
        self._regenerate_once = regenerate_once
        self.intake = Intake(limits=limits or Limits(), omit_unsupported_tools=omit_unsupported_tools)

    async def prepare(
        self,
        body: Any,
        *,
        owner: str,
        body_bytes: int = 0,
        response_id: str | None = None,
        created_at: int | None = None,
    ) -> Prepared:
        """Everything that can fail before a model is asked: a failure here is a plain HTTP error.

        `body_bytes`, the size of the body as received, decides whether checking it is worth a thread.
        A background response run again after its process died keeps its `response_id` and `created_at`.
        """
        valid = await checked(body_bytes, self.intake.create, body)
        request, tools, text_format, new_items = valid.request, valid.tools, valid.text_format, valid.new_items
        _check_combinations(request)
        model = self._router.canonical(request.model)
        context = await self._context.context(request, new_items, owner=owner)
        parallel = request.parallel_tool_calls is not False
        include = request.include or []
        call = ModelCall(
            model=model,
            upstream_model=model,
            items=for_model(context),
            instructions=request.instructions,
            tools=tools.specs,
            tool_choice=tools.mode,
            allowed_tools=tools.allowed,
            parallel_tool_calls=parallel,
            max_tool_calls=request.max_tool_calls,
            max_output_tokens=request.max_output_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            text_format=text_format,
            reasoning_effort=request.reasoning.effort if request.reasoning else None,
            include_encrypted_reasoning="reasoning.encrypted_content" in include,
            truncation=request.truncation or "disabled",
            user=request.safety_identifier or request.user,
        )
        return Prepared(
            request=request,
            owner=owner,
            response_id=response_id or new_id("resp"),
            created_at=int(time.time()) if created_at is None else created_at,
            model=model,
            input_items=[item for item in new_items],
            tools=tools,
            call=call,
            conversation_id=conversation_of(request),
        )

    async def _start(self, prepared: Prepared) -> _Started:
        """Open a provider stream and wait for its first delta, failing over on retryable errors."""
        last: APIError | None = None
        unsupported: InvalidRequest | None = None
        limited: list[RateLimited] = []
        for deployment in self._router.attempts(prepared.request.model):
            call = dataclasses.replace(
                prepared.call, model=deployment.name, upstream_model=deployment.entry.target
            )
            stream: AsyncIterator[Delta] | None = None
            try:
                # Some providers check the request when called, others on the first step: both count.
                stream = deployment.provider.stream(call)
                first = await anext(stream, None)
            except (UpstreamError, RateLimited) as exc:
                await _close(stream)
                if isinstance(exc, UpstreamError) and not exc.retryable:
                    raise
                log.warning("deployment %s failed before the first token: %s", deployment.label, log_safe(exc))
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                limited += [exc] if isinstance(exc, RateLimited) else []
                self._router.record_failure(deployment, retry_after=retry_after)
                last = exc
                continue
            except InvalidRequest as exc:
                await _close(stream)
                if exc.code != "unsupported_feature":
                    raise
                # This deployment lacks a feature the request needs; another deployment may have it.
                log.info("deployment %s cannot serve this request: %s", deployment.label, log_safe(exc))
                unsupported = unsupported or exc
                continue
            except BaseException:
                await _close(stream)
                raise
            self._router.record_success(deployment)
            log.info("response %s served by %s", prepared.response_id, deployment.label)
            return _Started(deployment, call, stream, first)
        error = _soonest(limited) or last or unsupported
        assert error is not None
        raise error

    async def enqueue(self, prepared: Prepared) -> dict[str, Any]:
        """Store a background response as `queued` and return it; `run` then does the work."""
        queued = base_response(
            response_id=prepared.response_id,
            created_at=prepared.created_at,
            request=prepared.request,
            model=prepared.model,
            tools=prepared.tools.echo,
        )
        queued["status"] = "queued"
        await self._keeper.save(prepared, queued, [], {})
        return queued

    async def run(
        self, prepared: Prepared, *, handed_off: Callable[[], bool] = lambda: False
    ) -> AsyncIterator[list[Event]]:
        """Batches of events, opening to terminal; the response is stored before the terminal batch.

        In the foreground a failure before the model's first token is raised (a plain HTTP error);
        in the background nobody waits for the HTTP answer, so it becomes a stored `response.failed`.
        Background work stopped while `handed_off()` is true stores nothing: another process runs it again.
        """
        try:
            started = await self._start(prepared)
        except APIError as exc:
            if not prepared.background:
                raise
            builder = self._builder(prepared, prepared.call, model=prepared.model)
            batch = builder.opening(queued=True) + builder.fail(exc)
            assert builder.final is not None
            await self._keeper.save(prepared, builder.final, builder.events, {})
            yield batch
            return
        deployment = started.deployment
        call = started.call
        builder = self._builder(prepared, call, model=deployment.name)
        stream = started.stream
        first: Delta | None = started.first
        retries_left = 1 if self._regenerate_once else 0
        turns = LoopTurns()
        try:
            yield builder.opening(queued=prepared.background)
            while True:
                try:
                    if first is not None:
                        if batch := builder.feed(first):
                            yield batch
                        async for delta in stream:
                            await turns.give()
                            if batch := builder.feed(delta):
                                yield batch
                    batch = builder.finish()
                    break
                except GenerationFailed as exc:
                    # Ask the model once more, if nothing of the bad output has reached the client:
                    # a non-streamed answer is only sent at the end, so it can always start afresh.
                    if not retries_left or (prepared.stream and builder.emitted_output):
                        raise
                    retries_left -= 1
                    log.warning("regenerating response %s once: %s", prepared.response_id, log_safe(exc))
                    await _close(stream)
                    if prepared.stream:
                        builder.reset_pending()
                    else:
                        builder = self._builder(prepared, call, model=deployment.name)
                        builder.opening(queued=prepared.background)
                    stream = deployment.provider.stream(call)
                    first = await anext(stream, None)
        except APIError as exc:
            log.warning("response %s failed: %s", prepared.response_id, log_safe(exc))
            batch = builder.fail(exc)
        except (asyncio.CancelledError, GeneratorExit):
            # Foreground work is cancelled when its client hangs up; background work on request, or
            # handed off (at shutdown, or with its lease lost) to run again from its input elsewhere.
            if prepared.background and handed_off():
                raise
            if prepared.background:
                builder.cancel()
            elif not prepared.stream:
                # A non-streamed answer had not left the server: nobody holds this response's id.
                log.info("response %s: the client left before its answer; nothing stored", prepared.response_id)
                raise
            else:
                builder.interrupt("client_disconnected")
            assert builder.final is not None
            await self._keeper.save(prepared, builder.final, builder.events, builder.reasoning_blobs)
            raise
        except Exception as exc:
            log.error("response %s failed: %s", prepared.response_id, log_safe_trace(exc))
            batch = builder.fail(ServerError("The server had an error while processing your request."))
        finally:
            await _close(stream)
        assert builder.final is not None
        try:
            # Storing a large response takes milliseconds of serialising: not straight after the last delta.
            await turns.give()
            await self._keeper.keep(prepared, builder.final, builder.events, builder.reasoning_blobs)
        except ServerError as exc:
            if not (prepared.stream or prepared.background):
                raise  # a plain 500, logged where every 5xx answer is
            # A stream reports it only as its terminal event: logged here, once.
            log.error("response %s could not be stored: %s", prepared.response_id, log_safe_trace(exc))
            batch = [*batch[:-1], *builder.retract(ServerError(exc.message, code="store_error"))]
        yield batch

    @staticmethod
    def _builder(prepared: Prepared, call: ModelCall, *, model: str) -> EventBuilder:
        max_calls = prepared.request.max_tool_calls
        if not call.parallel_tool_calls:
            max_calls = 1
        options = prepared.request.stream_options
        return EventBuilder(
            base_response(
                response_id=prepared.response_id,
                created_at=prepared.created_at,
                request=prepared.request,
                model=model,
                tools=prepared.tools.echo,
            ),
            tools=call.tools,
            allowed_tools=call.allowed_tools if call.tool_choice != "none" else frozenset(),
            max_calls=max_calls,
            text_format=call.text_format,
            obfuscate=not (options is not None and options.include_obfuscation is False),
            include_encrypted_reasoning=call.include_encrypted_reasoning,
            # Only background responses store their events (followers resume them by number).
            keep_events=prepared.background,
        )


def _soonest(limited: list[RateLimited]) -> RateLimited | None:
    """The 429 to answer with when deployments were rate limited, whatever else failed: it is the only
    failure that says when trying again will work, and the soonest of those waits is the honest one."""
    if not limited:
        return None
    return min(limited, key=lambda exc: float("inf") if exc.retry_after is None else exc.retry_after)


async def _close(stream: AsyncIterator[Delta] | None) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
