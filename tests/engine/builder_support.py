"""Driving the event builder directly with neutral deltas."""

from __future__ import annotations

from typing import Any

from respgate.engine.builder import EventBuilder
from respgate.engine.events import Event
from respgate.engine.response import base_response
from respgate.protocol.ids import new_id
from respgate.protocol.request import CreateResponse
from respgate.providers.base import Delta, FunctionSpec

WEATHER = FunctionSpec(
    name="get_weather",
    description=None,
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    strict=True,
)


def builder(tools: list[FunctionSpec] | None = None, **options: Any) -> EventBuilder:
    request = CreateResponse(model="m")
    response = base_response(
        response_id=new_id("resp"), created_at=1_700_000_000, request=request, model="m", tools=[]
    )
    return EventBuilder(response, tools=tools if tools is not None else [WEATHER], **options)


def run(deltas: list[Delta], built: EventBuilder | None = None) -> list[Event]:
    """opening + every delta + finish, as one list of events."""
    built = built or builder()
    events = built.opening()
    for delta in deltas:
        events += built.feed(delta)
    events += built.finish()
    return events
