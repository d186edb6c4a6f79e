"""Defence tables: who blocked whom, who accepts whom (message requests), and users' reports.

Blocks and acceptances are relations between two accounts and go when either account is deleted
(:func:`forget_account`). Reports stay: like a verdict (cove.safety.storage), a report is the record of what
someone was reported for and by whom, which a review, an appeal and the weighing of a reporter's reliability
need after the reported account, or the reporter's, was deleted. A report holds message text only when the
reporter's client attached messages it decrypted, with the user's consent shown before sending.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import insert_new, metadata
from cove.safety.pairs import ACCEPTS, BLOCKS
from cove.safety.reports import Report

safety_blocks = Table(
    "safety_blocks",
    metadata,
    Column("owner_account_id", String(36), primary_key=True),
    Column("blocked_account_id", String(36), primary_key=True),
    Column("since_ms", BigInteger, nullable=False),
    # The deletion of the blocked account finds its rows by this column.
    Index("ix_safety_blocks_blocked", "blocked_account_id"),
)

safety_acceptances = Table(
    "safety_acceptances",
    metadata,
    Column("owner_account_id", String(36), primary_key=True),
    Column("peer_account_id", String(36), primary_key=True),
    Column("since_ms", BigInteger, nullable=False),
    Index("ix_safety_acceptances_peer", "peer_account_id"),
)

safety_reports = Table(
    "safety_reports",
    metadata,
    Column("report_id", String(32), primary_key=True),
    Column("reporter_account_id", String(36), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("subject_account_id", String(36), nullable=True),
    Column("group_id", String(32), nullable=True),
    Column("client_message_ids", JSON, nullable=False),  # the messages reported (at most 10 ids)
    Column("attached", Integer, nullable=False),
    Column("contact", Boolean, nullable=False),  # the reporter had accepted the subject
    Column("blocked", Boolean, nullable=False),
    Column("left_group", Boolean, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_safety_reports_subject", "subject_account_id", "created_at_ms"),
    Index("ix_safety_reports_reporter", "reporter_account_id", "created_at_ms"),
)

safety_report_messages = Table(
    "safety_report_messages",
    metadata,
    Column("report_id", String(32), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("sender_account_id", String(36), nullable=False),
    Column("client_message_id", String(64), nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
)


# Two relay processes may record the same pair at once: the primary key keeps one, neither fails.
_ACCEPT = insert_new(safety_acceptances)
_BLOCK = {
    dialect: statement.returning(safety_blocks.c.since_ms) for dialect, statement in insert_new(safety_blocks).items()
}

# Bound parameters per statement stay far below SQLite's and asyncpg's limits.
_CHUNK = 500


class Blocked(NamedTuple):
    account_id: str
    since_ms: int


async def relations(conn: AsyncConnection, account: str, others: Iterable[str]) -> dict[tuple[str, str], int]:
    """The flags (cove.safety.pairs) of ``account`` to each of ``others`` and of each of them to ``account``;
    pairs with neither a block nor an acceptance are absent."""
    others = list(others)
    found: dict[tuple[str, str], int] = {}
    for flag, owner, peer in (
        (ACCEPTS, safety_acceptances.c.owner_account_id, safety_acceptances.c.peer_account_id),
        (BLOCKS, safety_blocks.c.owner_account_id, safety_blocks.c.blocked_account_id),
    ):
        for start in range(0, len(others), _CHUNK):
            chunk = others[start : start + _CHUNK]
            rows = await conn.execute(
                select(owner, peer).where(
                    or_(and_(owner == account, peer.in_(chunk)), and_(peer == account, owner.in_(chunk)))
                )
            )
            for row in rows:
                found[(row[0], row[1])] = found.get((row[0], row[1]), 0) | flag
    return found


async def accept(conn: AsyncConnection, owner: str, peer: str, now_ms: int) -> None:
    row = {"owner_account_id": owner, "peer_account_id": peer, "since_ms": now_ms}
    await conn.execute(_ACCEPT[conn.dialect.name], [row])


async def accepted_page(conn: AsyncConnection, owner: str, after: str | None, limit: int) -> list[str]:
    t = safety_acceptances
    query = select(t.c.peer_account_id).where(t.c.owner_account_id == owner)
    if after is not None:
        query = query.where(t.c.peer_account_id > after)
    rows = await conn.execute(query.order_by(t.c.peer_account_id).limit(limit))
    return [row[0] for row in rows]


async def block_count(conn: AsyncConnection, owner: str) -> int:
    t = safety_blocks
    return (await conn.execute(select(func.count()).where(t.c.owner_account_id == owner))).scalar_one()


async def block(conn: AsyncConnection, owner: str, blocked: str, now_ms: int) -> bool:
    """Block (idempotent: a second block keeps the first instant) and drop the owner's acceptance of them.
    True when the block is new."""
    row = {"owner_account_id": owner, "blocked_account_id": blocked, "since_ms": now_ms}
    added = await conn.execute(_BLOCK[conn.dialect.name], [row])
    a = safety_acceptances
    await conn.execute(delete(a).where(a.c.owner_account_id == owner, a.c.peer_account_id == blocked))
    return added.first() is not None


async def unblock(conn: AsyncConnection, owner: str, blocked: str) -> bool:
    t = safety_blocks
    removed = await conn.execute(delete(t).where(t.c.owner_account_id == owner, t.c.blocked_account_id == blocked))
    return bool(removed.rowcount)


async def blocks_of(conn: AsyncConnection, owner: str) -> list[Blocked]:
    t = safety_blocks
    rows = await conn.execute(
        select(t.c.blocked_account_id, t.c.since_ms).where(t.c.owner_account_id == owner).order_by(t.c.since_ms)
    )
    return [Blocked(row[0], row[1]) for row in rows]


async def add_report(conn: AsyncConnection, report: Report) -> None:
    await conn.execute(
        insert(safety_reports).values(
            report_id=report.report_id,
            reporter_account_id=report.reporter,
            kind=report.kind.value,
            subject_account_id=report.subject,
            group_id=report.group_id,
            client_message_ids=list(report.message_ids),
            attached=len(report.attached),
            contact=report.contact,
            blocked=report.blocked,
            left_group=report.left_group,
            created_at_ms=report.at_ms,
        )
    )
    if report.attached:
        await conn.execute(
            insert(safety_report_messages),
            [
                {
                    "report_id": report.report_id,
                    "position": position,
                    "sender_account_id": m.sender,
                    "client_message_id": m.client_message_id,
                    "sent_at_ms": m.sent_at_ms,
                    "text": m.text,
                }
                for position, m in enumerate(report.attached)
            ],
        )


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """The deleted account's blocks and acceptances, both ways; its reports stay (see the module's docstring)."""
    b, a = safety_blocks, safety_acceptances
    await conn.execute(delete(b).where(or_(b.c.owner_account_id == account_id, b.c.blocked_account_id == account_id)))
    await conn.execute(delete(a).where(or_(a.c.owner_account_id == account_id, a.c.peer_account_id == account_id)))


async def purge_attached(conn: AsyncConnection, reported_before_ms: int) -> int:
    """Delete the attached messages of reports made before the instant; the reports (who, whom, when, how many
    were attached) stay for the detector's feedback and the review's record."""
    r, m = safety_reports, safety_report_messages
    old = select(r.c.report_id).where(r.c.created_at_ms < reported_before_ms).scalar_subquery()
    result = await conn.execute(delete(m).where(m.c.report_id.in_(old)))
    return result.rowcount or 0


class ReportSeen(NamedTuple):
    """A report as the operator reviewing its subject reads it, with what its reporter chose to attach."""

    report_id: str
    reporter: str
    kind: str
    group_id: str | None
    message_ids: list[str]
    contact: bool
    created_at_ms: int
    attached: list[tuple[str, int, str]]  # (sender account, sent at, text), while kept


async def reports_about(conn: AsyncConnection, subject: str, limit: int) -> list[ReportSeen]:
    """The latest reports naming an account, newest first."""
    r, m = safety_reports, safety_report_messages
    rows = (
        await conn.execute(
            select(r).where(r.c.subject_account_id == subject).order_by(r.c.created_at_ms.desc()).limit(limit)
        )
    ).mappings()
    seen = [
        ReportSeen(
            row["report_id"],
            row["reporter_account_id"],
            row["kind"],
            row["group_id"],
            list(row["client_message_ids"]),
            row["contact"],
            row["created_at_ms"],
            [],
        )
        for row in rows
    ]
    if seen:
        attached = await conn.execute(
            select(m.c.report_id, m.c.sender_account_id, m.c.sent_at_ms, m.c.text)
            .where(m.c.report_id.in_([s.report_id for s in seen]))
            .order_by(m.c.report_id, m.c.position)
        )
        by_report = {s.report_id: s.attached for s in seen}
        for a in attached:
            by_report[a.report_id].append((a.sender_account_id, a.sent_at_ms, a.text))
    return seen
