"""The response store's SQL, compiled once per dialect and run on the driver, and its row mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Text, and_, bindparam, case, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from respgate.storage.base import History, StoredResponse
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
        # Values the statement carries itself (SQLite's `OFFSET 0` after a bound LIMIT).
        self._defaults = dict(compiled.params)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if name in params else self._defaults[name] for name in self._names]


def history_query(*, postgres: bool, max_links: int) -> Any:
    """A chain's links, newest first: (id, previous_response_id, size, running total, input_items, output).

    One recursive query walks child -> parent by primary key over the narrow columns only, summing
    sizes from the newest link back; `depth` caps the walk (one link past `max_links` shows the chain
    goes on), so a (corrupt) cycle of previous_response_id cannot loop forever. The content of a link is
    read only when it is to be loaded: its running total is within `:budget`, and the whole walk is within
    `:whole_budget` bytes and `:whole_links` links (the budget and the cap for all or nothing, else more
    than any walk reaches). The output is cut out of the stored Response by the database, so the echoed
    request fields never reach the process.
    """
    start = (
        select(
            responses.c.id,
            responses.c.previous_response_id,
            responses.c.size,
            responses.c.size.label("total"),
            literal_column("0").label("depth"),
        )
        .where(responses.c.id == bindparam("response_id"), responses.c.owner == bindparam("owner"))
        .cte("walk", recursive=True)
    )
    parent = responses.alias("parent")
    walk = start.union_all(
        select(
            parent.c.id,
            parent.c.previous_response_id,
            parent.c.size,
            start.c.total + parent.c.size,
            start.c.depth + literal_column("1"),
        ).where(
            parent.c.id == start.c.previous_response_id,
            parent.c.owner == bindparam("owner"),
            start.c.depth < literal_column(str(int(max_links))),
        )
    )
    # The whole walk's measures, apart from the content: SQLite computes window functions over a
    # temporary table of every column the query needs, which must not include the content.
    measured = select(
        *walk.c, func.max(walk.c.total).over().label("whole"), func.count().over().label("links")
    ).subquery("measured")
    stored = responses.alias("stored")
    if postgres:
        output: Any = cast(cast(stored.c.response, JSON).op("->")(literal_column("'output'")), Text)
    else:
        output = func.json_extract(stored.c.response, literal_column("'$.output'"))
    load = and_(
        measured.c.total <= bindparam("budget"),
        measured.c.depth < literal_column(str(int(max_links))),
        measured.c.whole <= bindparam("whole_budget"),
        measured.c.links <= bindparam("whole_links"),
    )
    return (
        select(
            measured.c.id,
            measured.c.previous_response_id,
            measured.c.size,
            measured.c.total,
            case((load, stored.c.input_items)),
            case((load, output)),
        )
        .select_from(measured.join(stored, stored.c.id == measured.c.id))
        .order_by(measured.c.depth)
    )


def history_from_rows(rows: list[Any], *, max_links: int) -> History:
    """The History of a chain from `history_query`'s rows (newest first), which it empties as it goes.

    Each link is decoded once, oldest first, and its row let go as soon as it is: the process never
    holds more than one link's text beside the decoded items.
    """
    walked = min(len(rows), max_links)
    # Positions follow history_query: id, previous_response_id, size, total, input_items, output.
    oldest = rows[walked - 1]
    size, gap = oldest[3], oldest[1] if len(rows) == walked else None
    items: list[dict[str, Any]] = []
    loaded = 0
    for index in reversed(range(walked)):
        row, rows[index] = rows[index], None
        if row[4] is not None:
            loaded += row[2]
            items.extend(orjson.loads(row[4]))
            items.extend(orjson.loads(row[5] or "[]"))
    # A walk that went past `max_links` has more history than it measured.
    truncated = loaded < size or len(rows) > walked
    return History(items=items, size=size, loaded=loaded, truncated=truncated, gap=gap)


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


def purge_statement(*, postgres: bool) -> Any:
    """Delete up to `:limit` of the oldest finished responses created before `:before` (events cascade).

    The `created_at` index makes the oldest rows a range scan. On PostgreSQL, rows another process is
    purging at the same moment are skipped rather than waited for.
    """
    running: list[Any] = [literal_column("'queued'"), literal_column("'in_progress'")]
    oldest = (
        select(responses.c.id)
        .where(responses.c.created_at < bindparam("before"), responses.c.status.not_in(running))
        .order_by(responses.c.created_at)
        .limit(bindparam("limit"))
    )
    if postgres:
        oldest = oldest.with_for_update(skip_locked=True)
    return responses.delete().where(responses.c.id.in_(oldest.scalar_subquery()))
