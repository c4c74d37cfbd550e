"""The tables (DESIGN.md §5), one SQLAlchemy Core shape on every database.

Keys and index values are order-preserving byte strings (see ``_ordering``), so plain
``BLOB``/``bytea`` comparison is Datastore order and every query is a range scan.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "metadata", "tables"]

# Bump when the table shapes change; a database written by a newer version is refused.
# 2: kind columns are bytes; multi-valued bitmask; pending_seen. 3: dl_kind_multi
SCHEMA_VERSION = 3

metadata = sa.MetaData()

# name -> value: 'schema_version', 'secret' (cursor signing), 'index_generation'
meta = sa.Table(
    "dl_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# (project, database, namespace) -> small int, so index rows stay short
partitions = sa.Table(
    "dl_partitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("database", sa.Text, nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.UniqueConstraint("project", "database", "namespace", name="uq_dl_partitions"),
)

entities = sa.Table(
    "dl_entities",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("key", sa.LargeBinary, primary_key=True),
    # UTF-8 bytes rather than text: kinds may contain NUL, which PostgreSQL text refuses
    sa.Column("kind", sa.LargeBinary, nullable=False),
    sa.Column("group_key", sa.LargeBinary, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # which indexed properties hold several values, as a 62-bit mask of name hashes
    # (indexes.multi_mask): an entity can repeat in an index only over such a property,
    # so queries de-duplicate only rows whose mask meets the index's (0: never)
    sa.Column("multi", sa.BigInteger, nullable=False, server_default="0"),
    # kind scans and kind + ancestor key ranges
    sa.Index("ix_dl_entities_kind", "partition", "kind", "key"),
)

# Per kind, the union of its entities' ``multi`` masks ever written (never cleared): a
# count over an index whose properties are not in it needs no de-duplication, so it can be
# COUNT(*) over the index entries rather than COUNT(DISTINCT key) (BENCHMARKS.md W9).
kind_multi = sa.Table(
    "dl_kind_multi",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("kind", sa.LargeBinary, primary_key=True),
    sa.Column("multi", sa.BigInteger, nullable=False),
)

# Entity groups: optimistic-concurrency version, the version applied (visible to global
# queries, DESIGN.md §7) and the write-limit token bucket (§9).
groups = sa.Table(
    "dl_groups",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("group_key", sa.LargeBinary, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("applied", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.Float, nullable=True),
    sa.Column("tokens_at", sa.Float, nullable=True),
)

indexes = sa.Table(
    "dl_indexes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # unique text form of the definition: kind, ancestor and ordered (name, direction)s
    sa.Column("definition", sa.Text, nullable=False, unique=True),  # JSON: NUL escaped
    sa.Column("kind", sa.LargeBinary, nullable=False),
    sa.Column("ancestor", sa.Boolean, nullable=False),
    sa.Column("properties", sa.Text, nullable=False),  # JSON [[name, "asc"|"desc"], ...]
    sa.Column("builtin", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # building | serving | deleting
)

index_entries = sa.Table(
    "dl_index_entries",
    metadata,
    sa.Column("index_id", sa.Integer, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("value", sa.LargeBinary, primary_key=True),
    sa.Column("key", sa.LargeBinary, primary_key=True),
    sqlite_with_rowid=False,
)

# Committed writes not yet visible to global queries (DESIGN.md §7).
pending = sa.Table(
    "dl_pending",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("group_key", sa.LargeBinary, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("due", sa.Float, nullable=False),
    sa.Column("mutations", sa.LargeBinary, nullable=False),
    sa.Index("ix_dl_pending_due", "due"),
)

counters = sa.Table(
    "dl_counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

tables = {
    t.name: t
    for t in (
        meta,
        partitions,
        entities,
        kind_multi,
        groups,
        indexes,
        index_entries,
        pending,
        counters,
    )
}
