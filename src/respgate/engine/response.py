"""The Response object's fields and defaults, as OpenAI echoes them (reference §5)."""

from __future__ import annotations

from typing import Any

from respgate.protocol.request import CreateResponse, FormatJsonSchema


def base_response(
    *,
    response_id: str,
    created_at: int,
    request: CreateResponse,
    model: str,
    tools: list[dict[str, Any]],
) -> dict[str, Any]:
    """The in-progress Response: every field present, request values echoed, OpenAI's defaults elsewhere."""
    text = request.text
    text_format: dict[str, Any] = {"type": "text"}
    if text is not None:
        text_format = text.format.model_dump(by_alias=True, exclude_none=True)
        if isinstance(text.format, FormatJsonSchema):
            # Echoed whole, as OpenAI does: `description` null when absent, `strict` a boolean.
            text_format.update(description=text.format.description, strict=bool(text.format.strict))
    text_echo: dict[str, Any] = {
        "format": text_format,
        "verbosity": request.verbosity or (text.verbosity if text else None) or "medium",
    }
    reasoning = request.reasoning
    choice = request.tool_choice
    conversation = request.conversation
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": bool(request.background),
        "completed_at": None,
        "content_filters": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "model": model,
        "output": [],
        "parallel_tool_calls": True if request.parallel_tool_calls is None else request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": request.prompt_cache_key,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
        },
        "safety_identifier": request.safety_identifier,
        "service_tier": "default",
        "store": True if request.store is None else request.store,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": text_echo,
        "tool_choice": choice if isinstance(choice, str) else choice.model_dump(exclude_none=True),
        "tools": tools,
        "top_logprobs": request.top_logprobs or 0,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": None,
        "user": request.user,
        "metadata": request.metadata or {},
    }
    if conversation is not None:
        response["conversation"] = {"id": conversation if isinstance(conversation, str) else conversation.id}
    return response
