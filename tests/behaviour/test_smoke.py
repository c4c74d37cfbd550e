"""A first end-to-end check of put/get/delete on every backend."""

from __future__ import annotations

import datetime as dt

from datastore_lite import Client, Entity, GeoPoint


def test_put_get_delete_round_trip(client: Client) -> None:
    entity = Entity(client.key("User", "alice", "Photo"), exclude_from_indexes=("image",))
    entity.update(
        caption="hi",
        date=dt.datetime(2020, 1, 1),
        likes=3,
        tags=["a", "b"],
        image=b"x" * 3000,
        geo=GeoPoint(1, 2),
        ref=client.key("User", "bob"),
        nothing=None,
        ratio=1.5,
    )
    client.put(entity)
    assert entity.key is not None and not entity.key.is_partial
    got = client.get(entity.key)
    assert got is not None
    assert got["caption"] == "hi"
    assert got["date"] == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert got["geo"] == GeoPoint(1.0, 2.0)
    assert got["ref"] == client.key("User", "bob")
    assert got.exclude_from_indexes == {"image"}
    client.delete(entity.key)
    assert client.get(entity.key) is None
