"""A store written with another schema version is refused with a clear error, not a traceback.

The storage layout carries ``schema_version`` in ``dl_meta``; there is no in-place migration
before 1.0, so an older store must say how to move the data (export, import) and a newer one
must say to upgrade. Either way nothing in the store is changed.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from datastore_lite import Client, Entity, exceptions
from datastore_lite.backends import _schema


def _set_version(url: str, version: int) -> None:
    engine = sa.create_engine(url)  # the test URLs are SQLAlchemy URLs (tests/conftest.py)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE dl_meta SET value = :v WHERE name = 'schema_version'"),
            {"v": str(version)},
        )
    engine.dispose()


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (-1, r"older datastore_lite \(schema version {old}\).*cannot read it.*export"),
        (+1, r"newer datastore_lite \(schema version {new}\).*Upgrade datastore_lite"),
    ],
)
def test_a_store_with_another_schema_version_is_refused(
    shared_url: str, delta: int, message: str
) -> None:
    client = Client(project="p", url=shared_url, consistency="strong", index_yaml=os.devnull)
    client.put(_entity(client))
    client.close()
    version = _schema.SCHEMA_VERSION + delta
    _set_version(shared_url, version)
    pattern = message.format(old=version, new=version)
    with pytest.raises(exceptions.FailedPrecondition, match=pattern):
        Client(project="p", url=shared_url, index_yaml=os.devnull)
    _set_version(shared_url, _schema.SCHEMA_VERSION)  # nothing else was touched
    again = Client(project="p", url=shared_url, consistency="strong", index_yaml=os.devnull)
    try:
        got = again.get(again.key("K", 1))
        assert got is not None and got["v"] == 1
    finally:
        again.close()


def _entity(client: Client) -> Entity:
    entity = Entity(client.key("K", 1))
    entity["v"] = 1
    return entity
