"""The response store's SQL, compiled once per dialect and run on the driver, and its row mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from respgate.storage.base import StoredResponse
from respgate.storage.tables import responses

RESPONSE_COLUMNS = (
    responses.c.id,
    responses.c.owner,
    responses.c.created_at,
    responses.c.status,
    responses.c.previous_response_id,
    responses.c.response,
    responses.c.input_items,
)


class DriverQuery:
    """A statement compiled once for the engine's dialect, with its positional parameter order."""

    def __init__(self, engine: AsyncEngine, statement: Any) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self._names]


def chain_query(max_chain_length: int) -> Any:
    # One recursive query walks child -> parent by primary key; `depth` orders the result oldest
    # first and caps the walk, so a (corrupt) cycle of previous_response_id cannot loop forever.
    start = (
        select(*RESPONSE_COLUMNS, literal_column("0").label("depth"))
        .where(responses.c.id == bindparam("response_id"), responses.c.owner == bindparam("owner"))
        .cte("chain", recursive=True)
    )
    parent = responses.alias("parent")
    walk = start.union_all(
        select(*(parent.c[column.name] for column in RESPONSE_COLUMNS), start.c.depth + literal_column("1")).where(
            parent.c.id == start.c.previous_response_id,
            parent.c.owner == bindparam("owner"),
            start.c.depth < literal_column(str(int(max_chain_length) - 1)),
        )
    )
    return select(*(walk.c[column.name] for column in RESPONSE_COLUMNS)).order_by(walk.c.depth.desc())


def record_from_row(row: Sequence[Any]) -> StoredResponse:
    # Positions follow RESPONSE_COLUMNS.
    return StoredResponse(
        id=row[0],
        owner=row[1],
        created_at=row[2],
        status=row[3],
        previous_response_id=row[4],
        response=orjson.loads(row[5]),
        input_items=orjson.loads(row[6]),
    )
