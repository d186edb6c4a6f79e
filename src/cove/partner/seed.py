"""Write a generated world into the partner store: the parent's own population, and optionally a mirror.

The parent's tables (``users``, ``friendships``, ``contact_uploads``, ``blocks``) stand in for the social network
a real parent company already has. ``mirror=True`` is for evaluation and benchmarks only: it also writes the
generated messenger accounts as if the sharing gateway had delivered them under two purposes, ``account_linking``
(use account_linking) and ``friend_suggestions`` (use friend_suggestions), with phone numbers hashed under the
partner's key exactly as :func:`cove.sharing.wire.phone_hash` does, plus ``truth_links``, the generator's answer
key. A store fed by real batches must never be mirrored into: the mirror purposes replace any rows of the same
purpose ids.

``people`` adds real people (say, the users of an end-to-end test's messenger) to the parent network, each with a
few friends and in a few contact books, so that linking and suggestions have something to find for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cove.partner.population import World
from cove.sharing import wire
from cove.sharing.wire import (
    CATEGORY_DEVICE_MODEL,
    CATEGORY_DEVICE_OS,
    CATEGORY_PHONE,
    CATEGORY_VENDOR_DEVICE_ID,
    Use,
)

MIRROR_BATCH = "mirror"
LINKING_PURPOSE = "account_linking"
SUGGESTIONS_PURPOSE = "friend_suggestions"
PERSON_FIELDS = ("name", "phone", "device_model", "os_name", "os_version", "vendor_device_id")
PEOPLE_FRIENDS = 5  # friends each added person gets, at random
PEOPLE_BOOKS = 3  # contact books each added person's number is in
_CATEGORIES = {  # of the linking columns the mirror shares
    "vendor_device_id": CATEGORY_VENDOR_DEVICE_ID,
    "device_model": CATEGORY_DEVICE_MODEL,
    "os_name": CATEGORY_DEVICE_OS,
    "os_version": CATEGORY_DEVICE_OS,
}


@dataclass(frozen=True)
class SeedReport:
    users: int
    friendships: int
    contact_uploads: int
    blocks: int
    mirrored_subjects: int = 0
    truth_links: int = 0


def add_people(world: World, people: Sequence[dict[str, Any]], seed: int = 0) -> World:
    """``world`` with ``people`` appended as parent users (ids after the generated ones), befriended and in books.

    Each person is a dict with ``name``, ``phone`` (E.164), ``device_model``, ``os_name``, ``os_version`` and
    ``vendor_device_id``; any but ``name`` may be missing or None.
    """
    if not people:
        return world
    unknown = {k for p in people for k in p} - set(PERSON_FIELDS)
    if unknown:
        raise ValueError(f"unknown person fields {sorted(unknown)}; expected {PERSON_FIELDS}")
    rng = np.random.default_rng(seed)
    n_users = world.users.num_rows
    ids = np.arange(n_users + 1, n_users + len(people) + 1, dtype=np.int64)
    added = pa.table(
        {
            "user_id": ids,
            "name": pa.array([p["name"] for p in people], pa.string()),
            "phone_e164": pa.array([p.get("phone") for p in people], pa.string()),
            **{c: pa.array([p.get(c) for p in people], pa.string()) for c in PERSON_FIELDS[2:]},
            "birth_year": pa.nulls(len(people), pa.int64()),
        }
    )
    users = pa.concat_tables([world.users, added.cast(world.users.schema)])
    friends = rng.integers(1, n_users + 1, (len(people), PEOPLE_FRIENDS)) if n_users else np.zeros((len(people), 0))
    a = np.repeat(ids, friends.shape[1])
    b = friends.ravel().astype(np.int64)
    new_edges = pa.table({"a": np.minimum(a, b), "b": np.maximum(a, b)})
    friendships = pa.concat_tables([world.friendships, new_edges]).group_by(["a", "b"]).aggregate([])
    with_phone = [p["phone"] for p in people if p.get("phone")]
    owners = rng.integers(1, n_users + 1, (len(with_phone), PEOPLE_BOOKS)) if n_users else np.zeros((0, 0))
    books = pa.table(
        {"owner": owners.ravel().astype(np.int64), "phone_e164": np.repeat(with_phone, owners.shape[1]).astype(str)}
    )
    uploads = pa.concat_tables([world.contact_uploads, books.cast(world.contact_uploads.schema)])
    uploads = uploads.group_by(["owner", "phone_e164"]).aggregate([])
    return replace(world, users=users, friendships=friendships, contact_uploads=uploads)


def seed_store(
    conn: duckdb.DuckDBPyConnection,
    world: World,
    now_ms: int,
    *,
    mirror: bool = False,
    phone_key: bytes | None = None,
    plain_phones: bool = False,
    device_fields: bool = True,
) -> SeedReport:
    """Replace the parent's population with ``world``'s (dropping links and suggestions derived from the old one).

    With ``mirror``: also the messenger side, as described in the module docstring. ``phone_key`` is the key the
    partner's trust bundle holds; ``plain_phones`` shares numbers unhashed (a non-pseudonymised purpose, the only
    case where typos can be matched); ``device_fields=False`` shares only phone and vendor id for linking, as the
    cove default policy's account_linking purpose does.
    """
    if mirror and phone_key is None and not plain_phones:
        raise ValueError("a mirror with hashed phones needs the partner's phone key")
    tables = {
        "users": world.users,
        "friendships": world.friendships,
        "contact_uploads": world.contact_uploads,
        "blocks": world.blocks,
    }
    conn.execute("BEGIN")
    try:
        for table in ("users", "friendships", "contact_uploads", "blocks", "links", "suggestions", "truth_links"):
            conn.execute(f"DELETE FROM {table}")
        for name, data in tables.items():
            conn.register("seed_in", data)
            conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM seed_in")
            conn.unregister("seed_in")
        mirrored = truth = 0
        if mirror:
            phone = "phone_e164" if plain_phones else wire.hmac_sql(phone_key or b"", "phone_e164")
            column = "phone_number" if plain_phones else "phone_hash"
            mirrored, truth = _mirror(conn, world.accounts, now_ms, phone, column, device_fields)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SeedReport(
        users=world.users.num_rows,
        friendships=world.friendships.num_rows,
        contact_uploads=world.contact_uploads.num_rows,
        blocks=world.blocks.num_rows,
        mirrored_subjects=mirrored,
        truth_links=truth,
    )


def _mirror(
    conn: duckdb.DuckDBPyConnection, accounts: pa.Table, now_ms: int, phone: str, phone_column: str, device: bool
) -> tuple[int, int]:
    """The messenger accounts as rows of the two mirror purposes, and the answer key; (subjects, true links)."""
    linking_columns = ["vendor_device_id", *(["device_model", "os_name", "os_version"] if device else [])]
    purposes = {
        LINKING_PURPOSE: (Use.ACCOUNT_LINKING, linking_columns),
        SUGGESTIONS_PURPOSE: (Use.FRIEND_SUGGESTIONS, []),
    }
    conn.register("mirror_in", accounts)
    for purpose, (use, columns) in purposes.items():
        categories = [CATEGORY_PHONE, *sorted({_CATEGORIES[c] for c in columns})]
        conn.execute("DELETE FROM shared_profiles WHERE purpose = ?", [purpose])
        conn.execute("DELETE FROM shared_purposes WHERE purpose = ?", [purpose])
        conn.execute(
            "INSERT INTO shared_purposes VALUES (?, ?, 'consent', NULL, ?, ?)",
            [purpose, use.value, categories, MIRROR_BATCH],
        )
        conn.execute(
            f"""INSERT INTO shared_profiles (purpose, subject, {", ".join([phone_column, *columns])}, batch_id,
                                             received_at_ms)
                SELECT ?, {", ".join(["subject", phone, *columns])}, ?, ? FROM mirror_in""",
            [purpose, MIRROR_BATCH, now_ms],
        )
    conn.execute("INSERT INTO truth_links SELECT subject, user_id FROM mirror_in WHERE user_id IS NOT NULL")
    conn.unregister("mirror_in")
    return accounts.num_rows, conn.execute("SELECT count(*) FROM truth_links").fetchall()[0][0]
