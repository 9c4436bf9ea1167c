"""The app factory: the gateway's parts are built once here and handed to the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp

from respgate.config import ModelEntry, Settings
from respgate.engine.admission import Admission
from respgate.engine.background import BackgroundJobs
from respgate.engine.router import Router
from respgate.engine.service import ResponsesService
from respgate.engine.tokens import InputTokenCounter
from respgate.http.auth import KeyChecker
from respgate.http.conversations import ConversationRoutes
from respgate.http.errors import (
    RequestIdMiddleware,
    on_api_error,
    on_client_disconnect,
    on_http_error,
    on_unexpected,
)
from respgate.http.routes import Routes
from respgate.protocol.errors import APIError
from respgate.providers.base import ManagedProvider, Provider
from respgate.storage.base import ConversationStore, JobStore, ResponseStore
from respgate.storage.retention import Retention
from respgate.storage.sql import SqlResponseStore, open_store

log = logging.getLogger(__name__)

ProviderFactory = Callable[[ModelEntry], Provider]


@dataclass(slots=True, kw_only=True)
class Gateway:
    """The running parts: settings, stores, router (with its providers), service."""

    settings: Settings
    store: ResponseStore
    conversations: ConversationStore
    router: Router
    service: ResponsesService
    jobs: BackgroundJobs
    admission: Admission

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        build_provider: ProviderFactory,
        store: ResponseStore | None = None,
        conversations: ConversationStore | None = None,
        jobs: JobStore | None = None,
    ) -> Gateway:
        """Start the providers and open the stores; a given `store` is used (and closed) as it is.

        `conversations` and `jobs` default to the conversation and job stores of a SQL `store`.
        """
        router = Router(
            entries=settings.models,
            build=build_provider,
            aliases=settings.aliases,
            fallbacks=settings.fallbacks,
            default_model=settings.default_model,
        )
        started: list[ManagedProvider] = []
        overload = settings.overload
        opened_store = store or await open_store(
            settings.resolved_database_url(),
            pool_size=overload.store_pool_size,
            pool_timeout=overload.store_pool_timeout_seconds,
        )
        if conversations is None or jobs is None:
            if not isinstance(opened_store, SqlResponseStore):
                await opened_store.aclose()
                raise TypeError("a store that is not a SqlResponseStore needs its own conversation and job stores")
            conversations = conversations or opened_store.conversations
            jobs = jobs or opened_store.jobs
        try:
            for provider in router.providers():
                if isinstance(provider, ManagedProvider):
                    await provider.start()
                    started.append(provider)
        except BaseException:
            for managed in started:
                await managed.aclose()
            await opened_store.aclose()
            raise
        service = ResponsesService(
            store=opened_store,
            conversations=conversations,
            router=router,
            max_context_bytes=settings.max_context_bytes or settings.max_body_bytes,
            omit_unsupported_tools=settings.unsupported_tools == "omit",
            limits=settings.limits,
        )
        background = BackgroundJobs(service=service, store=opened_store, jobs=jobs, settings=settings.background)
        background.start()
        return cls(
            settings=settings,
            store=opened_store,
            conversations=conversations,
            router=router,
            service=service,
            jobs=background,
            admission=Admission(
                max_generations=overload.max_generations,
                max_store_queue=overload.max_store_queue,
                max_loop_lag=overload.max_loop_lag_seconds,
                store_backlog=opened_store.backlog,
                retry_after=overload.retry_after_seconds,
            ),
        )

    async def aclose(self) -> None:
        # First, while providers and store still work: running background jobs get their grace period.
        await self.jobs.aclose()
        for provider in self.router.providers():
            if isinstance(provider, ManagedProvider):
                try:
                    await provider.aclose()
                except Exception:
                    log.exception("closing a provider failed")
        await self.store.aclose()


def create_app(gateway: Gateway, *, manage: bool = False) -> ASGIApp:
    """The ASGI app over `gateway`; with `manage`, the app's lifespan closes the gateway on shutdown."""
    settings = gateway.settings
    keys = KeyChecker(settings.api_keys)
    admission = gateway.admission
    routes = Routes(
        service=gateway.service,
        counter=InputTokenCounter(service=gateway.service, router=gateway.router),
        jobs=gateway.jobs,
        store=gateway.store,
        router=gateway.router,
        keys=keys,
        admission=admission,
        max_body_bytes=settings.max_body_bytes,
        keepalive_seconds=settings.keepalive_seconds,
    )
    conversations = ConversationRoutes(
        store=gateway.conversations,
        keys=keys,
        max_body_bytes=settings.max_body_bytes,
        intake=gateway.service.intake,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        purging: asyncio.Task[None] | None = None
        if settings.retention_days is not None:
            purging = asyncio.create_task(Retention(gateway.store, days=settings.retention_days).run())
        admission.loop_lag.start()
        try:
            yield
        finally:
            admission.loop_lag.stop()
            if purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging
            if manage:
                await gateway.aclose()

    app = Starlette(
        routes=[
            Route("/v1/responses", routes.create, methods=["POST"]),
            Route("/v1/responses/input_tokens", routes.input_tokens, methods=["POST"]),
            Route("/v1/responses/{response_id}", routes.retrieve, methods=["GET"]),
            Route("/v1/responses/{response_id}", routes.delete, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/cancel", routes.cancel, methods=["POST"]),
            Route("/v1/responses/{response_id}/input_items", routes.input_items, methods=["GET"]),
            Route("/v1/models", routes.models, methods=["GET"]),
            Route("/v1/models/{model:path}", routes.model, methods=["GET"]),
            Route("/healthz", routes.health, methods=["GET"]),
            *conversations.routes(),
        ],
        exception_handlers={
            APIError: on_api_error,
            HTTPException: on_http_error,
            ClientDisconnect: on_client_disconnect,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    # Outermost, so that even a 500 from the error middleware carries the request id.
    return RequestIdMiddleware(app)
