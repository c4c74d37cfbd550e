"""get / put / delete / batch on every backend (SEMANTICS.md §2, §6.2, §6.3, §8).

Runs on SQLite in memory, SQLite file and PostgreSQL through the ``client`` / ``make_client``
fixtures. The built-in index rows are checked directly in ``dl_index_entries`` - the one
place these tests look below the public API.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import datastore as official
from google.cloud.datastore.batch import Batch as OfficialBatch
from google.cloud.datastore_v1.types import datastore as datastore_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from datastore_lite import Batch, Client, Entity, GeoPoint, Key
from datastore_lite._convert import key_to_ref, to_value
from datastore_lite._ordering import encode_path, encode_value
from datastore_lite.backends import _schema as schema
from tests import strategies as ds

# -- helpers -----------------------------------------------------------------------------------


def _entity(key: Key, exclude: tuple[str, ...] = (), **props: Any) -> Entity:
    entity = Entity(key, exclude_from_indexes=exclude)
    entity.update(props)
    return entity


def _keys_of(entities: list[Entity]) -> set[Key]:
    return {e.key for e in entities if e.key is not None}


# -- get / get_multi ---------------------------------------------------------------------------


def test_get_missing_returns_none(client: Client) -> None:
    assert client.get(client.key("Nope", 1)) is None
    assert client.get_multi([]) == []


def test_get_multi_returns_the_stored_entities(client: Client) -> None:
    stored = [_entity(client.key("K", i), n=i) for i in range(1, 6)]
    client.put_multi(stored)
    keys = [client.key("K", i) for i in (5, 1, 3, 99)]
    got = client.get_multi(keys)
    # SEMANTICS.md §7.1: result order is undefined, so compare as sets
    assert _keys_of(got) == {client.key("K", i) for i in (1, 3, 5)}
    assert {e.key.id: e["n"] for e in got if e.key is not None} == {1: 1, 3: 3, 5: 5}


def test_get_multi_fills_missing_and_deferred(client: Client) -> None:
    client.put(_entity(client.key("K", 1), a=1))
    missing: list[Entity] = []
    deferred: list[Key] = []
    got = client.get_multi(
        [client.key("K", 1), client.key("K", 2), client.key("K", "x")],
        missing=missing,
        deferred=deferred,
    )
    assert _keys_of(got) == {client.key("K", 1)}
    # SEMANTICS.md §8: missing receives Entities with only a key; nothing is deferred here
    assert _keys_of(missing) == {client.key("K", 2), client.key("K", "x")}
    assert all(isinstance(e, Entity) and dict(e) == {} for e in missing)
    assert deferred == []


def test_get_with_missing_list(client: Client) -> None:
    missing: list[Entity] = []
    assert client.get(client.key("K", 7), missing=missing) is None
    assert [e.key for e in missing] == [client.key("K", 7)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"missing": [1]}, "missing must be None or an empty list"),
        ({"deferred": [1]}, "deferred must be None or an empty list"),
    ],
)
def test_get_multi_rejects_non_empty_out_lists(
    client: Client, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        client.get_multi([client.key("K", 1)], **kwargs)
    assert info.value.args == (message,)


def test_get_rejects_keys_of_another_project(client: Client) -> None:
    with pytest.raises(ValueError) as info:
        client.get(Key("K", 1, project="other-project"))
    assert info.value.args == ("Keys do not match project",)
    with pytest.raises(ValueError) as info:
        client.get_multi([client.key("K", 1), Key("K", 1, project="other-project")])
    assert info.value.args == ("Keys do not match project",)


# -- put / put_multi ---------------------------------------------------------------------------


def test_put_completes_a_partial_key_in_place(client: Client) -> None:
    entity = _entity(client.key("Parent", "p", "Photo"), caption="sunset")
    key_before = entity.key
    client.put(entity)
    assert entity.key is not None and not entity.key.is_partial
    assert entity.key.flat_path[:3] == ("Parent", "p", "Photo")
    assert isinstance(entity.key.id, int)
    assert key_before is not None and key_before.is_partial  # a new Key object, as official
    got = client.get(entity.key)
    assert got is not None and got["caption"] == "sunset"


def test_put_multi_completes_every_partial_key(client: Client) -> None:
    entities = [_entity(client.key("K"), i=i) for i in range(5)]
    entities.append(_entity(client.key("K", "named"), i=5))
    client.put_multi(entities)
    keys = [e.key for e in entities]
    assert all(k is not None and not k.is_partial for k in keys)
    assert len(set(keys)) == 6
    got = client.get_multi([k for k in keys if k is not None])
    assert sorted(e["i"] for e in got) == list(range(6))


def test_put_multi_rejects_a_single_entity(client: Client) -> None:
    entity = _entity(client.key("K", 1), a=1)
    with pytest.raises(ValueError) as info:
        client.put_multi(entity)  # type: ignore[arg-type]
    assert info.value.args == ("Pass a sequence of entities",)
    assert client.get(client.key("K", 1)) is None


def test_put_requires_a_key(client: Client) -> None:
    with pytest.raises(ValueError) as info:
        client.put(Entity())
    assert info.value.args == ("Entity must have a key",)
    # client-side check before any I/O: the other entity of the call is not written either
    with pytest.raises(ValueError, match="^Entity must have a key$"):
        client.put_multi([_entity(client.key("K", 1), a=1), Entity()])
    assert client.get(client.key("K", 1)) is None


def test_put_multi_empty_is_a_no_op(client: Client) -> None:
    client.put_multi([])
    client.delete_multi([])
    assert client.get(client.key("K", 1)) is None


def test_whole_entity_replace(client: Client) -> None:
    # SEMANTICS.md §6.2: properties not present in the new entity are removed
    key = client.key("K", 1)
    client.put(_entity(key, a=1, b="two", c=[3]))
    client.put(_entity(key, b="new", d=None))
    got = client.get(key)
    assert got is not None
    assert dict(got) == {"b": "new", "d": None}


def test_put_snapshots_the_entity(client: Client) -> None:
    # the official client serialises at put() time; later edits do not leak into the commit
    entity = _entity(client.key("K", 1), a=1)
    with client.batch():
        client.put(entity)
        entity["a"] = 2
        entity["b"] = 3
    got = client.get(client.key("K", 1))
    assert got is not None and dict(got) == {"a": 1}


def test_exclude_from_indexes_round_trip(client: Client) -> None:
    entity = _entity(client.key("K", 1), ("blob", "text"), blob=b"x" * 2000, text="t", n=1)
    client.put(entity)
    got = client.get(entity.key)  # type: ignore[arg-type]
    assert got is not None
    assert got.exclude_from_indexes == {"blob", "text"}
    assert got == entity


# -- delete / delete_multi ---------------------------------------------------------------------


def test_delete_and_delete_multi(client: Client) -> None:
    entities = [_entity(client.key("K", i), i=i) for i in range(1, 5)]
    client.put_multi(entities)
    client.delete(client.key("K", 1))
    client.delete_multi([client.key("K", 2), entities[2]])  # an Entity is accepted too
    client.delete(entities[3])
    assert client.get_multi([client.key("K", i) for i in range(1, 5)]) == []


def test_deleting_a_missing_entity_is_fine(client: Client) -> None:
    # SEMANTICS.md §6.2: delete of a missing entity is not an error
    client.delete(client.key("K", 404))
    client.delete_multi([client.key("K", 405), client.key("Other", "x")])
    assert client.get(client.key("K", 404)) is None


def test_delete_requires_a_complete_key(client: Client) -> None:
    with pytest.raises(ValueError) as info:
        client.delete(client.key("K"))
    assert info.value.args == ("Key must be complete",)


# -- batch (SEMANTICS.md §6.3) -----------------------------------------------------------------


def _error(call: Callable[[], Any]) -> tuple[type, tuple[Any, ...]] | None:
    try:
        call()
    except Exception as exc:  # the exception is the observed outcome
        return type(exc), exc.args
    return None


def test_batch_state_machine_texts(client: Client) -> None:
    batch = client.batch()
    entity = _entity(client.key("K", 1), a=1)
    key = client.key("K", 2)
    # INITIAL
    assert _error(lambda: batch.put(entity)) == (
        ValueError,
        ("Batch must be in progress to put()",),
    )
    assert _error(lambda: batch.delete(key)) == (
        ValueError,
        ("Batch must be in progress to delete()",),
    )
    assert _error(batch.commit) == (ValueError, ("Batch must be in progress to commit()",))
    assert _error(batch.rollback) == (ValueError, ("Batch must be in progress to rollback()",))
    # IN_PROGRESS
    batch.begin()
    assert _error(batch.begin) == (ValueError, ("Batch already started previously.",))
    assert _error(lambda: batch.put(Entity())) == (ValueError, ("Entity must have a key",))
    assert _error(lambda: batch.put(Entity(Key("K", 1, project="other")))) == (
        ValueError,
        ("Key must be from same project as batch",),
    )
    elsewhere = Key("K", 1, project=client.project, database="elsewhere")
    assert _error(lambda: batch.put(Entity(elsewhere))) == (
        ValueError,
        ("Key must be from same database as batch",),
    )
    assert _error(lambda: batch.delete(Key("K", 1, project="other"))) == (
        ValueError,
        ("Key must be from same project as batch",),
    )
    assert _error(lambda: batch.delete(client.key("K"))) == (ValueError, ("Key must be complete",))
    batch.put(entity)
    batch.delete(key)
    assert len(batch.mutations) == 2
    batch.commit()
    # FINISHED
    assert _error(lambda: batch.put(entity)) == (
        ValueError,
        ("Batch must be in progress to put()",),
    )
    assert _error(batch.commit) == (ValueError, ("Batch must be in progress to commit()",))
    assert _error(batch.rollback) == (ValueError, ("Batch must be in progress to rollback()",))
    assert _error(batch.begin) == (ValueError, ("Batch already started previously.",))
    assert client.get(client.key("K", 1)) == entity


def test_batch_rollback_discards(client: Client) -> None:
    batch = client.batch()
    batch.begin()
    batch.put(_entity(client.key("K", 1), a=1))
    batch.rollback()
    assert _error(batch.commit) == (ValueError, ("Batch must be in progress to commit()",))
    assert client.get(client.key("K", 1)) is None


class _StubAPI:
    """Stands in for the official client's RPC layer: every commit succeeds, writes nothing."""

    def commit(self, request: Any, **kwargs: Any) -> Any:
        return datastore_pb2.CommitResponse()


class _StubClient:
    project = "test-proj"
    database = None
    namespace = None
    _datastore_api = _StubAPI()


_BATCH_OPS = st.lists(
    st.sampled_from(
        ["begin", "put", "put-partial", "put-keyless", "put-other-project", "delete"]
        + ["delete-partial", "delete-other-project", "commit", "rollback"]
    ),
    max_size=8,
)


def _run_batch_op(op: str, batch: Any, key_cls: type, entity_cls: type) -> Any:
    project = "test-proj"
    actions: dict[str, Callable[[], Any]] = {
        "begin": batch.begin,
        "put": lambda: batch.put(entity_cls(key_cls("K", 1, project=project))),
        "put-partial": lambda: batch.put(entity_cls(key_cls("K", project=project))),
        "put-keyless": lambda: batch.put(entity_cls()),
        "put-other-project": lambda: batch.put(entity_cls(key_cls("K", 1, project="other"))),
        "delete": lambda: batch.delete(key_cls("K", 2, project=project)),
        "delete-partial": lambda: batch.delete(key_cls("K", project=project)),
        "delete-other-project": lambda: batch.delete(key_cls("K", 2, project="other")),
        "commit": batch.commit,
        "rollback": batch.rollback,
    }
    return _error(actions[op])


@settings(max_examples=25)
@given(ops=_BATCH_OPS)
def test_batch_state_machine_matches_official(client: Client, ops: list[str]) -> None:
    # Any sequence of calls raises exactly what google-cloud-datastore's Batch raises.
    # put and delete touch different keys; repeating one of them would be a second mutation
    # of one entity, which the server rejects (§6.2) but the stub does not, so no repeats.
    ours = Batch(client)
    theirs = OfficialBatch(_StubClient())
    seen: set[str] = set()
    for op in ops:
        if op in ("put", "delete", "put-partial"):
            if op in seen:
                continue
            seen.add(op)
        got = _run_batch_op(op, ours, Key, Entity)
        expected = _run_batch_op(op, theirs, official.Key, official.Entity)
        assert got == expected, (op, ops)


def test_batch_context_manager_commits_and_completes_keys(client: Client) -> None:
    partial = _entity(client.key("K"), a=1)
    with client.batch() as batch:
        assert client.current_batch is batch
        batch.put(partial)
        client.put(_entity(client.key("K", "via-client"), b=2))  # queued in the batch
        client.delete(client.key("K", "never"))
        # nothing is visible before the batch commits
        assert client.get(client.key("K", "via-client")) is None
        assert partial.key is not None and partial.key.is_partial
    assert client.current_batch is None
    assert partial.key is not None and not partial.key.is_partial
    assert client.get(partial.key) == partial
    assert client.get(client.key("K", "via-client")) is not None


def test_batch_context_manager_rolls_back_on_error(client: Client) -> None:
    with pytest.raises(RuntimeError, match="boom"), client.batch() as batch:
        batch.put(_entity(client.key("K", 1), a=1))
        raise RuntimeError("boom")
    assert client.current_batch is None
    assert client.get(client.key("K", 1)) is None


def test_explicit_commit_inside_with_is_fine(client: Client) -> None:
    with client.batch() as batch:
        batch.put(_entity(client.key("K", 1), a=1))
        batch.commit()
    assert client.get(client.key("K", 1)) is not None


def test_batch_properties(make_client: Callable[..., Client]) -> None:
    client = make_client(namespace="ns", database="db1")
    batch = client.batch()
    assert (batch.project, batch.namespace, batch.database) == ("test-proj", "ns", "db1")
    assert batch.current() is None
    with batch:
        assert batch.current() is batch


# -- namespaces and databases ------------------------------------------------------------------


def test_namespaces_are_isolated(client: Client) -> None:
    for namespace in (None, "a", "b"):
        client.put(_entity(client.key("K", 1, namespace=namespace), ns=namespace))
    for namespace in (None, "a", "b"):
        got = client.get(client.key("K", 1, namespace=namespace))
        assert got is not None and got["ns"] == namespace
        assert got.key is not None and got.key.namespace == namespace
    client.delete(client.key("K", 1, namespace="a"))
    assert client.get(client.key("K", 1, namespace="a")) is None
    assert client.get(client.key("K", 1)) is not None
    assert client.get(client.key("K", 1, namespace="b")) is not None


def test_client_namespace_is_the_default(client: Client) -> None:
    # SEMANTICS.md §8: client.namespace is a plain settable attribute used by client.key()
    client.namespace = "tenant"
    key = client.key("K", 1)
    assert key.namespace == "tenant"
    client.put(_entity(key, a=1))
    assert client.get(client.key("K", 1, namespace=None)) is None
    client.namespace = None
    assert client.key("K", 1).namespace is None
    assert client.get(client.key("K", 1)) is None
    assert client.get(Key("K", 1, project="test-proj", namespace="tenant")) is not None


def test_client_namespace_argument(make_client: Callable[..., Client]) -> None:
    in_ns = make_client(namespace="tenant")
    assert in_ns.namespace == "tenant"
    assert in_ns.key("K", 1).namespace == "tenant"
    assert in_ns.key("K", 1, namespace="x").namespace == "x"


def _memory(client: Client) -> bool:
    """Two clients on ``sqlite://`` are two separate in-memory stores."""
    return client.url == "sqlite://"


def test_databases_are_isolated(make_client: Callable[..., Client]) -> None:
    first = make_client()
    second = make_client(database="db2")
    if _memory(first):
        pytest.skip("two clients on sqlite:// are two separate in-memory stores")
    first.put(_entity(first.key("K", 1), where="default"))
    second.put(_entity(second.key("K", 1), where="db2"))
    got_first, got_second = first.get(first.key("K", 1)), second.get(second.key("K", 1))
    assert got_first is not None and got_first["where"] == "default"
    assert got_second is not None and got_second["where"] == "db2"
    assert got_second.key is not None and got_second.key.database == "db2"
    second.delete(second.key("K", 1))
    assert second.get(second.key("K", 1)) is None
    assert first.get(first.key("K", 1)) is not None
    # "" and None both name the default database (DESIGN.md §3)
    default_again = make_client(database="")
    assert default_again.database is None
    assert default_again.get(default_again.key("K", 1)) is not None


def test_batch_rejects_a_key_of_another_database(make_client: Callable[..., Client]) -> None:
    first = make_client()
    second = make_client(database="db2")
    with pytest.raises(ValueError) as info:
        first.put(_entity(second.key("K", 1), a=1))
    assert info.value.args == ("Key must be from same database as batch",)


# -- every value type through the store --------------------------------------------------------


@settings(max_examples=25)
@given(entity=ds.entities(key_strategy=st.just(Key("RoundTrip", 1, project="test-proj"))))
def test_every_value_type_round_trips(client: Client, entity: Entity) -> None:
    client.put(entity)
    got = client.get(Key("RoundTrip", 1, project="test-proj"))
    assert got is not None
    expected = ds.expected_after_store(entity)
    assert ds.canonical(got) == ds.canonical(expected)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-(2**63), id="int-min"),
        pytest.param(2**63 - 1, id="int-max"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("-inf"), id="-inf"),
        pytest.param(-0.0, id="-0.0"),
        pytest.param("é\x00日\U0001f600", id="str"),
        pytest.param(b"\x00\xff", id="bytes"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param(GeoPoint(-90.0, 180.0), id="geo"),
        pytest.param(Key("A", -5, "B", "é", project="other", namespace="ns"), id="key"),
        pytest.param([1, "a", None, {"q": 1.5}], id="list"),
        pytest.param([], id="empty-list"),
        pytest.param({"a": {"b": [1, 2]}}, id="embedded-dict"),
        pytest.param(dt.datetime(1, 1, 1), id="ts-year-1"),
        pytest.param(dt.datetime(9999, 12, 31, 23, 59, 59, 999999), id="ts-year-9999"),
    ],
)
def test_value_round_trips(client: Client, value: Any) -> None:
    key = client.key("K", 1)
    client.put(_entity(key, v=value))
    got = client.get(key)
    assert got is not None
    assert ds.canonical(got["v"]) == ds.canonical(ds.expected_after_store(value))


def test_embedded_entity_round_trips_with_key_and_exclusions(client: Client) -> None:
    inner = _entity(Key("Inner", 1, project="test-proj"), ("secret",), secret="s", shown=1)
    client.put(_entity(client.key("K", 1), m=inner, plain={"x": 1}))
    got = client.get(client.key("K", 1))
    assert got is not None
    assert isinstance(got["m"], Entity) and got["m"] == inner
    assert got["m"].exclude_from_indexes == {"secret"}
    assert isinstance(got["plain"], Entity) and got["plain"].key is None
    assert dict(got["plain"]) == {"x": 1}


class _Color(str, enum.Enum):  # noqa: UP042 - the (str, Enum) mixin is the case under test
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


def test_str_and_int_subclasses_are_stored_as_their_content(client: Client) -> None:
    # The official client stores the string / integer content (protobuf string_value /
    # integer_value); str() of a (str, Enum) member would be "_Color.RED".
    key = client.key("K", 1)
    client.put(_entity(key, color=_Color.RED, level=_Level.HIGH, colors=[_Color.RED]))
    got = client.get(key)
    assert got is not None
    assert got["color"] == "red" and type(got["color"]) is str
    assert got["level"] == 3 and type(got["level"]) is int
    assert got["colors"] == ["red"]
    assert ("color", _enc("red")) in _index_rows(client, key)


# -- datetimes (SEMANTICS.md §2.1, §2.2) -------------------------------------------------------


def test_naive_datetime_is_utc_and_returned_aware(client: Client) -> None:
    naive = dt.datetime(2020, 5, 17, 12, 30, 45, 123456)
    client.put(_entity(client.key("K", 1), t=naive))
    got = client.get(client.key("K", 1))
    assert got is not None
    assert got["t"] == dt.datetime(2020, 5, 17, 12, 30, 45, 123456, tzinfo=dt.UTC)
    assert got["t"].utcoffset() == dt.timedelta(0)
    assert got["t"].microsecond == 123456


def test_aware_datetime_is_converted_to_utc(client: Client) -> None:
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    client.put(_entity(client.key("K", 1), t=dt.datetime(2020, 1, 1, 5, 30, 0, 1, tzinfo=india)))
    got = client.get(client.key("K", 1))
    assert got is not None
    assert got["t"] == dt.datetime(2020, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    assert got["t"].tzinfo is not None and got["t"].utcoffset() == dt.timedelta(0)


def test_extra_precision_is_rounded_down_to_microseconds(client: Client) -> None:
    # SEMANTICS.md §2.2: 123456789 ns read back as 123456 µs
    value = DatetimeWithNanoseconds(2020, 1, 1, nanosecond=123456789, tzinfo=dt.UTC)
    client.put(_entity(client.key("K", 1), t=value))
    got = client.get(client.key("K", 1))
    assert got is not None
    assert got["t"] == dt.datetime(2020, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)


# -- built-in index rows (dl_index_entries) ----------------------------------------------------


def _index_rows(client: Client, key: Key) -> list[tuple[str, bytes]]:
    """Every built-in index row of the entity at ``key``: (property name, encoded value).

    Reads ``dl_index_entries`` by (partition, key) through the backend, and names each row's
    index from the registry's built-in indexes of the key's kind.
    """
    api = client._datastore_api
    ref = key_to_ref(key)
    pid = api.pid_of(ref)
    if pid < 0:
        return []
    table = schema.index_entries
    stmt = api.backend.compiled(
        "test_rows_of_key",
        lambda: sa.select(table.c.index_id, table.c.value).where(
            table.c.partition == sa.bindparam("pid"), table.c.key == sa.bindparam("key")
        ),
    )
    with api.backend.read() as txn:
        found = txn.fetchall(stmt, {"pid": pid, "key": encode_path(ref.path)})
    api.registry.reload()
    names = {iid: prop for (kind, prop), iid in api.registry.builtin.items() if kind == key.kind}
    rows = []
    for index_id, value in found:
        assert index_id in names, f"row of index {index_id}, not a built-in index of {key.kind}"
        rows.append((names[index_id], bytes(value)))
    return sorted(rows)


def _enc(value: Any) -> bytes:
    return encode_value(to_value(value))


def _expected_rows(
    props: dict[str, Any], exclude: set[str], prefix: str = ""
) -> set[tuple[str, bytes]]:
    """SEMANTICS.md §3.1-§3.3: one entry per distinct indexed value; lists per element; an
    empty list as null (legacy); embedded entities under dotted names; excluded ones none."""
    rows: set[tuple[str, bytes]] = set()
    for name, value in props.items():
        if name in exclude:
            continue
        full = prefix + name
        elements = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            rows.add((full, _enc(None)))
        for element in elements:
            if isinstance(element, dict):
                inner_exclude = (
                    ds.effective_exclusions(element) if isinstance(element, Entity) else set()
                )
                rows |= _expected_rows(element, inner_exclude, full + ".")
            else:
                rows.add((full, _enc(element)))
    return rows


def test_index_rows_follow_put_update_and_delete(client: Client) -> None:
    key = client.key("Indexed", 1)
    client.put(
        _entity(
            key,
            ("unindexed", "big"),
            a=1,
            tags=["x", "y", "x"],  # a repeated element is one entry
            unindexed="hidden",
            big="z" * 3000,
            empty=[],
            nothing=None,
            m={"inner": 2, "deeper": {"z": True}},
            when=dt.datetime(2020, 1, 1),
        )
    )
    rows = _index_rows(client, key)
    assert rows == sorted(
        [
            ("a", _enc(1)),
            ("tags", _enc("x")),
            ("tags", _enc("y")),
            ("empty", _enc(None)),
            ("nothing", _enc(None)),
            ("m.inner", _enc(2)),
            ("m.deeper.z", _enc(True)),
            ("when", _enc(dt.datetime(2020, 1, 1))),
        ]
    )
    assert not any(name in ("unindexed", "big") for name, _ in rows)

    # update: rows of removed values are gone, new ones appear
    client.put(_entity(key, ("a",), a=1, tags=["y", "w"]))
    assert _index_rows(client, key) == sorted([("tags", _enc("y")), ("tags", _enc("w"))])

    client.delete(key)
    assert _index_rows(client, key) == []


def test_exclusion_needs_a_value_to_carry_it(client: Client) -> None:
    # The official client marks exclude_from_indexes on each value (each list element), so
    # an excluded name without a value - absent, or an empty list - is not excluded once
    # stored, and the empty list indexes as null (legacy, SEMANTICS.md §2.2).
    key = client.key("Indexed", 1)
    client.put(_entity(key, ("empty", "absent", "full"), empty=[], full=[1]))
    got = client.get(key)
    assert got is not None and got.exclude_from_indexes == {"full"}
    assert _index_rows(client, key) == [("empty", _enc(None))]


def test_index_rows_belong_to_their_entity(client: Client) -> None:
    client.put_multi([_entity(client.key("Indexed", i), v=i) for i in (1, 2)])
    client.delete(client.key("Indexed", 1))
    assert _index_rows(client, client.key("Indexed", 1)) == []
    assert _index_rows(client, client.key("Indexed", 2)) == [("v", _enc(2))]


@settings(max_examples=25)
@given(entity=ds.entities(key_strategy=st.just(Key("Indexed", 1, project="test-proj"))))
def test_index_rows_match_the_indexed_values(client: Client, entity: Entity) -> None:
    client.put(entity)
    expected = _expected_rows(dict(entity), ds.effective_exclusions(entity))
    assert _index_rows(client, Key("Indexed", 1, project="test-proj")) == sorted(expected)


@pytest.mark.parametrize(
    ("key", "prop"),
    [
        pytest.param(Key("K\x00", 1, project="test-proj"), "p", id="kind"),
        pytest.param(Key("K", 1, project="test-proj"), "a\x00b", id="property-name"),
    ],
)
def test_nul_in_kind_and_property_name(client: Client, key: Key, prop: str) -> None:
    # Kinds and property names are UTF-8 strings; NUL is a valid character on every backend
    # (kinds are stored as UTF-8 bytes, index definitions as JSON).
    entity = _entity(key, (), **{prop: 1})
    client.put(entity)
    assert client.get(key) == entity
    assert _index_rows(client, key) == [(prop, _enc(1))]
