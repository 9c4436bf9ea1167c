"""Counting a request's input tokens (`POST /v1/responses/input_tokens`) without running the model."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from respgate.engine.intake import checked
from respgate.engine.router import Router
from respgate.engine.service import ResponsesService
from respgate.protocol.errors import InvalidRequest
from respgate.protocol.request import CountInputTokens
from respgate.providers.base import ModelCall, TokenCounter

# Roughly four bytes of English text or JSON per token for BPE tokenizers of the GPT and Llama families.
BYTES_PER_TOKEN = 4


def estimate_tokens(call: ModelCall) -> int:
    """One token per four bytes, rounded up, of the compact JSON of what the model would be given:
    the instructions, the context items and the tool definitions."""
    rendered = orjson.dumps(
        {
            "instructions": call.instructions,
            "items": call.items,
            "tools": [dataclasses.asdict(tool) for tool in call.tools],
        }
    )
    return -(-len(rendered) // BYTES_PER_TOKEN)


class InputTokenCounter:
    """Builds the context exactly as a create would (history, conversation, tools, checks) and counts it."""

    def __init__(self, *, service: ResponsesService, router: Router) -> None:
        self._service = service
        self._router = router

    async def count(self, body: Any, *, owner: str, body_bytes: int = 0) -> int:
        request = await checked(body_bytes, self._service.intake.model, CountInputTokens, body)
        # `model` is optional here: without it the count is the default model's (or the first configured).
        model = request.model or self._router.default_model or next(iter(self._router.model_names), None)
        if model is None:
            raise InvalidRequest(
                "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
            )
        create = {key: value for key, value in body.items() if value is not None}
        prepared = await self._service.prepare({**create, "model": model}, owner=owner, body_bytes=body_bytes)
        # The first deployment counts: the deployments of one model name are meant to serve one model.
        deployment = next((dep for dep in self._router.deployments() if dep.name == prepared.model), None)
        if deployment is None or not isinstance(deployment.provider, TokenCounter):
            return estimate_tokens(prepared.call)
        call = dataclasses.replace(prepared.call, model=deployment.name, upstream_model=deployment.entry.target)
        return await deployment.provider.count_tokens(call)
