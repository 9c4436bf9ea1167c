"""Background jobs: the lease through which a process owns a queued or running background response.

Schema
------
``background_jobs`` holds one row per background response that has not ended yet:

- ``response_id`` (primary key): the ``resp_…`` id. No foreign key: the job is written before the queued
  response (a job whose response never got stored was never acknowledged, and is dropped when claimed),
  and a deleted response leaves its job to be dropped the same way.
- ``owner``: the API key's owner, for running it again and for scoping ``cancel``.
- ``created_at``: the response's ``created_at`` (unix seconds), kept when the response is run again;
  jobs are claimed oldest first.
- ``request``: the validated request body (JSON TEXT, input items with their ids), enough to run the
  response again from its input. NULL for a response queued before this table existed: it cannot be run
  again and is marked failed.
- ``attempts``: how many times a process has started it; a job started more than the configured maximum
  is marked failed instead of being run again.
- ``holder``: the process that owns it (NULL: waiting for a process with a free slot).
- ``lease_expires_at``: when the holder's lease ends (unix milliseconds, by the database's clock). The
  holder renews it while it runs the job; once it has passed, any process may claim the job. 0 for a job
  nobody holds, so waiting jobs are claimable at once.
- ``cancel_requested``: set by ``cancel`` in any process; the holder notices it when it renews its lease.

A job row is deleted only after its response's final state is stored, so a response that is still
``queued`` or ``in_progress`` always has a job that some process will finish or fail.

Responses left ``queued`` or ``in_progress`` by earlier versions (whose background work died with their
process) get a job with no request here, so that the first process to claim it marks them failed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-09-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    jobs = op.create_table(
        "background_jobs",
        sa.Column("response_id", sa.String(), primary_key=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_background_jobs_lease_expires_at", "background_jobs", ["lease_expires_at"])
    responses = sa.table(
        "responses", sa.column("id"), sa.column("owner"), sa.column("created_at"), sa.column("status")
    )
    assert jobs is not None
    op.execute(
        jobs.insert().from_select(
            ["response_id", "owner", "created_at", "attempts", "lease_expires_at", "cancel_requested"],
            sa.select(
                responses.c.id,
                responses.c.owner,
                responses.c.created_at,
                sa.literal(0),
                sa.literal(0),
                sa.false(),
            ).where(responses.c.status.in_(["queued", "in_progress"])),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_background_jobs_lease_expires_at", table_name="background_jobs")
    op.drop_table("background_jobs")
