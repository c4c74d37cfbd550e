"""``datastore_lite.Key`` against the official ``google.cloud.datastore.Key`` (SEMANTICS.md §1, §8).

The official client is the reference implementation: for the same arguments both must
build the same key (every attribute, ``repr``, ``hash``, protobuf, urlsafe string) or raise
the same ``ValueError`` with the same arguments.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud.datastore import _app_engine_key_pb2
from google.cloud.datastore.key import Key as OfficialKey
from hypothesis import given
from hypothesis import strategies as st

from datastore_lite import Key
from tests import strategies as ds

# -- helpers -----------------------------------------------------------------------------------

_MISSING = object()


def _build(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Build ``cls(*args, **kwargs)``, converting a ``parent`` given as (args, kwargs)."""
    kwargs = dict(kwargs)
    parent = kwargs.get("parent")
    if isinstance(parent, tuple):
        kwargs["parent"] = _build(cls, *parent)
    return cls(*args, **kwargs)


def _outcome(build: Callable[[], Any]) -> Any:
    try:
        return build()
    except Exception as exc:  # the exception itself is the outcome compared
        return exc


def _assert_same_error(ours: Any, theirs: Any) -> None:
    assert isinstance(theirs, Exception), f"official client did not raise: {theirs!r}"
    assert type(ours) is type(theirs), (ours, theirs)
    assert ours.args == theirs.args


def _describe(key: Any) -> dict[str, Any]:
    """Everything observable on a key, for comparing ours with the official one."""
    return {
        "flat_path": key.flat_path,
        "path": key.path,
        "kind": key.kind,
        "id": key.id,
        "name": key.name,
        "id_or_name": key.id_or_name,
        "is_partial": key.is_partial,
        "project": key.project,
        "namespace": key.namespace,
        "database": key.database,
        "repr": repr(key),
        "hash": hash(key),
        "protobuf": key.to_protobuf(),
        "parent": repr(key.parent),
        "grandparent": repr(key.parent.parent) if key.parent is not None else None,
    }


# Any str kind is accepted by the constructor (the server validates kinds later).
_any_kinds = st.one_of(ds.kinds, st.text(alphabet=st.characters(codec="utf-8"), max_size=5))
_idents = st.one_of(ds.ids, ds.key_names, st.sampled_from([0, ""]))


@st.composite
def _key_args(
    draw: st.DrawFn, allow_partial: bool = True
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    depth = draw(st.integers(1, 4))
    flat: list[Any] = []
    for i in range(depth):
        flat.append(draw(_any_kinds))
        last = i == depth - 1
        if not (last and allow_partial and draw(st.booleans())):
            flat.append(draw(_idents))
    kwargs: dict[str, Any] = {"project": draw(st.sampled_from(["p", "my-proj", "é-proj"]))}
    namespace = draw(st.sampled_from([_MISSING, None, "", "ns", "other"]))
    if namespace is not _MISSING:
        kwargs["namespace"] = namespace
    database = draw(st.sampled_from([_MISSING, None, "", "db2"]))
    if database is not _MISSING:
        kwargs["database"] = database
    return tuple(flat), kwargs


# -- constructor -------------------------------------------------------------------------------

# SEMANTICS.md §8 Key: every constructor error of the official client, with its exact args.
_PARTIAL_PARENT = (("Parent",), {"project": "p"})
_PARENT = (("Parent", 1), {"project": "p", "namespace": "ns", "database": "db"})
_INVALID_CONSTRUCTIONS = [
    pytest.param((), {"project": "p"}, ("Key path must not be empty.",), id="empty-path"),
    pytest.param((1, 2), {"project": "p"}, (1, "Kind was not a string."), id="kind-int"),
    pytest.param(
        ("K", 1, None, 2), {"project": "p"}, (None, "Kind was not a string."), id="kind-none"
    ),
    pytest.param(
        ("K", 1.5), {"project": "p"}, (1.5, "ID/name was not a string or integer."), id="id-float"
    ),
    pytest.param(
        ("K", None), {"project": "p"}, (None, "ID/name was not a string or integer."), id="id-none"
    ),
    pytest.param(
        ("K", b"x"), {"project": "p"}, (b"x", "ID/name was not a string or integer."), id="id-bytes"
    ),
    pytest.param(("K", 1), {}, ("A Key must have a project set.",), id="no-project"),
    pytest.param(
        ("K", 1),
        {"project": None, "namespace": "ns"},
        ("A Key must have a project set.",),
        id="project-none",
    ),
    pytest.param(
        ("Child", 1),
        {"parent": _PARTIAL_PARENT},
        ("Parent key must be complete.",),
        id="partial-parent",
    ),
    pytest.param(
        ("Child", 1),
        {"parent": _PARENT, "namespace": "other"},
        ("Child namespace must agree with parent's.",),
        id="namespace-conflict",
    ),
    pytest.param(
        ("Child", 1),
        {"parent": _PARENT, "project": "q"},
        ("Child project must agree with parent's.",),
        id="project-conflict",
    ),
    pytest.param(
        ("Child", 1),
        {"parent": _PARENT, "database": "other"},
        ("Child database must agree with parent's.",),
        id="database-conflict",
    ),
    pytest.param(
        (),
        {"parent": _PARENT},
        ("Key path must not be empty.",),
        id="parent-empty-child",
    ),
]


@pytest.mark.parametrize(("args", "kwargs", "expected_args"), _INVALID_CONSTRUCTIONS)
def test_constructor_errors_match_official(
    args: tuple[Any, ...], kwargs: dict[str, Any], expected_args: tuple[Any, ...]
) -> None:
    ours = _outcome(lambda: _build(Key, args, kwargs))
    theirs = _outcome(lambda: _build(OfficialKey, args, kwargs))
    assert isinstance(ours, ValueError)
    assert ours.args == expected_args
    _assert_same_error(ours, theirs)


@given(_key_args())
def test_every_attribute_matches_official(case: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    args, kwargs = case
    ours, theirs = Key(*args, **kwargs), OfficialKey(*args, **kwargs)
    assert _describe(ours) == _describe(theirs)


@given(_key_args(), st.one_of(ds.ids, ds.key_names))
def test_parent_keyword_matches_official(
    case: tuple[tuple[Any, ...], dict[str, Any]], child_id: int | str
) -> None:
    args, kwargs = case
    parent_ours, parent_theirs = Key(*args, **kwargs), OfficialKey(*args, **kwargs)
    ours = _outcome(lambda: Key("Child", child_id, parent=parent_ours))
    theirs = _outcome(lambda: OfficialKey("Child", child_id, parent=parent_theirs))
    if isinstance(theirs, Exception):
        _assert_same_error(ours, theirs)
    else:
        # the parent's project, namespace and database are inherited
        assert _describe(ours) == _describe(theirs)
        assert ours.parent is parent_ours


def test_parent_path_and_inheritance() -> None:
    parent = Key("Parent", "alice", project="p", namespace="ns", database="db")
    child = Key("Photo", 7, parent=parent)
    assert child.flat_path == ("Parent", "alice", "Photo", 7)
    assert child.path == [{"kind": "Parent", "name": "alice"}, {"kind": "Photo", "id": 7}]
    assert (child.project, child.namespace, child.database) == ("p", "ns", "db")
    assert child.parent == parent
    # root keys have no parent; a partial key's parent drops only the kind
    assert parent.parent is None
    partial = Key("Parent", "alice", "Photo", project="p")
    assert partial.parent == Key("Parent", "alice", project="p")


def test_parent_is_cached() -> None:
    key = Key("A", 1, "B", 2, "C", 3, project="p")
    assert key.parent is key.parent
    assert key.parent is not None
    assert key.parent.flat_path == ("A", 1, "B", 2)


def test_accessors_of_partial_and_complete_keys() -> None:
    partial = Key("Parent", 1, "Kind", project="p")
    assert partial.is_partial
    assert (partial.kind, partial.id, partial.name, partial.id_or_name) == (
        "Kind",
        None,
        None,
        None,
    )
    by_id = Key("Kind", 5, project="p")
    assert (by_id.kind, by_id.id, by_id.name, by_id.id_or_name) == ("Kind", 5, None, 5)
    by_name = Key("Kind", "n", project="p")
    assert (by_name.kind, by_name.id, by_name.name, by_name.id_or_name) == ("Kind", None, "n", "n")
    assert not by_id.is_partial and not by_name.is_partial


def test_path_is_a_copy() -> None:
    key = Key("A", 1, "B", "x", project="p")
    path = key.path
    path[0]["id"] = 999
    path.append({"kind": "Z"})
    assert key.path == [{"kind": "A", "id": 1}, {"kind": "B", "name": "x"}]
    assert key.flat_path == ("A", 1, "B", "x")


# -- completed_key -----------------------------------------------------------------------------


@given(_key_args(allow_partial=True), st.one_of(ds.ids, ds.key_names, st.just(1.5)))
def test_completed_key_matches_official(
    case: tuple[tuple[Any, ...], dict[str, Any]], id_or_name: Any
) -> None:
    args, kwargs = case
    ours = _outcome(lambda: Key(*args, **kwargs).completed_key(id_or_name))
    theirs = _outcome(lambda: OfficialKey(*args, **kwargs).completed_key(id_or_name))
    if isinstance(theirs, Exception):
        _assert_same_error(ours, theirs)
    else:
        assert _describe(ours) == _describe(theirs)
        assert not ours.is_partial


def test_completed_key_errors() -> None:
    with pytest.raises(ValueError) as info:
        Key("K", 1, project="p").completed_key(2)
    assert info.value.args == ("Only a partial key can be completed.",)
    with pytest.raises(ValueError) as info:
        Key("K", project="p").completed_key(None)  # type: ignore[arg-type]
    assert info.value.args == (None, "ID/name was not a string or integer.")


def test_completed_key_keeps_partition_and_leaves_original_partial() -> None:
    partial = Key("P", 1, "K", project="p", namespace="ns", database="db")
    done = partial.completed_key("x")
    assert done == Key("P", 1, "K", "x", project="p", namespace="ns", database="db")
    assert partial.is_partial and partial.flat_path == ("P", 1, "K")


# -- equality and hashing (SEMANTICS.md §1.3) --------------------------------------------------


def test_partial_keys_are_never_equal() -> None:
    key = Key("K", project="p")
    same = key
    assert not (key == same)  # noqa: SIM201 - the operator itself is under test
    assert key != same
    assert key != Key("K", project="p")
    assert Key("K", 1, project="p") != key


def test_complete_key_equality_uses_path_project_namespace_database() -> None:
    base = Key("K", 1, project="p", namespace="ns", database="db")
    assert base == Key("K", 1, project="p", namespace="ns", database="db")
    assert not (base != Key("K", 1, project="p", namespace="ns", database="db"))  # noqa: SIM202
    assert base != Key("K", 2, project="p", namespace="ns", database="db")
    assert base != Key("K", "1", project="p", namespace="ns", database="db")
    assert base != Key("K", 1, project="q", namespace="ns", database="db")
    assert base != Key("K", 1, project="p", namespace="other", database="db")
    assert base != Key("K", 1, project="p", namespace="ns", database="other")
    assert base != ("K", 1)
    assert len({base, Key("K", 1, project="p", namespace="ns", database="db")}) == 1


def test_keys_have_no_ordering() -> None:
    # SEMANTICS.md §1.3: client Key objects define __eq__/__hash__ only, no __lt__
    with pytest.raises(TypeError):
        _ = Key("K", 1, project="p") < Key("K", 2, project="p")  # type: ignore[operator]


_small_args = st.tuples(
    st.tuples(st.sampled_from(["A", "B"]), st.sampled_from([1, 2, "1", _MISSING])),
    st.sampled_from(["p", "q"]),
    st.sampled_from([None, "", "ns"]),
    st.sampled_from([None, "", "db"]),
)


def _small_key(cls: type, spec: Any) -> Any:
    (kind, ident), project, namespace, database = spec
    flat = (kind,) if ident is _MISSING else (kind, ident)
    return cls(*flat, project=project, namespace=namespace, database=database)


@given(_small_args, _small_args)
def test_equality_and_hash_match_official(a: Any, b: Any) -> None:
    ours_a, ours_b = _small_key(Key, a), _small_key(Key, b)
    theirs_a, theirs_b = _small_key(OfficialKey, a), _small_key(OfficialKey, b)
    assert (ours_a == ours_b) == (theirs_a == theirs_b)
    assert (ours_a != ours_b) == (theirs_a != theirs_b)
    assert hash(ours_a) == hash(theirs_a)
    if ours_a == ours_b:
        assert hash(ours_a) == hash(ours_b)


# -- repr --------------------------------------------------------------------------------------


def test_repr() -> None:
    assert repr(Key("Kind", 1, project="p")) == "<Key('Kind', 1), project=p>"
    assert repr(Key("A", "x", "B", project="p", namespace="n")) == "<Key('A', 'x', 'B'), project=p>"
    assert repr(Key("K", 1, project="p", database="d")) == "<Key('K', 1), project=p, database=d>"


def test_pickle_round_trip() -> None:
    key = Key("A", 1, "B", "é", project="p", namespace="ns", database="db")
    clone = pickle.loads(pickle.dumps(key))
    assert clone == key and repr(clone) == repr(key) and clone.namespace == "ns"


# -- legacy urlsafe (SEMANTICS.md §1.5) --------------------------------------------------------

# SEMANTICS.md §1.5 test vectors (computed with google-cloud-datastore 2.27 and ndb 2.7.1)
_VECTORS = [
    pytest.param(
        Key("Parent", 59, "Child", "naem", project="my-proj"),
        None,
        b"agdteS1wcm9qchsLEgZQYXJlbnQYOwwLEgVDaGlsZCIEbmFlbQw",
        "6a076d792d70726f6a721b0b1206506172656e74183b0c0b12054368696c6422046e61656d0c",
        id="parent-child",
    ),
    pytest.param(
        Key("Kind", 1, project="p", namespace="ns"),
        "s~",
        b"agNzfnByCgsSBEtpbmQYAQyiAQJucw",
        "6a03737e70720a0b12044b696e6418010ca201026e73",
        id="namespace-s-prefix",
    ),
    pytest.param(
        Key("Kind", 1, project="p", namespace="ns"),
        None,
        b"agFwcgoLEgRLaW5kGAEMogECbnM",
        None,
        id="namespace",
    ),
    pytest.param(Key("Kind", 1, project="p"), None, b"agFwcgoLEgRLaW5kGAEM", None, id="plain"),
    # client quirk: an explicit empty namespace is emitted as an empty name_space field
    pytest.param(
        Key("Kind", 1, project="p", namespace=""),
        None,
        b"agFwcgoLEgRLaW5kGAEMogEA",
        None,
        id="empty-namespace",
    ),
]


def _unpad(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


@pytest.mark.parametrize(("key", "prefix", "urlsafe", "raw_hex"), _VECTORS)
def test_to_legacy_urlsafe_vectors(
    key: Key, prefix: str | None, urlsafe: bytes, raw_hex: str | None
) -> None:
    encoded = key.to_legacy_urlsafe(location_prefix=prefix)
    assert isinstance(encoded, bytes)
    assert encoded == urlsafe
    assert b"=" not in encoded
    if raw_hex is not None:
        assert _unpad(encoded).hex() == raw_hex


@pytest.mark.parametrize(("key", "prefix", "urlsafe", "raw_hex"), _VECTORS)
def test_from_legacy_urlsafe_vectors(
    key: Key, prefix: str | None, urlsafe: bytes, raw_hex: str | None
) -> None:
    for given_as in (urlsafe, urlsafe.decode("ascii")):
        decoded = Key.from_legacy_urlsafe(given_as)
        # the location prefix ("s~") is stripped; an empty namespace reads back as None
        assert decoded == Key(*key.flat_path, project=key.project, namespace=key.namespace or None)
        assert decoded.namespace == (key.namespace or None)
        assert decoded.project == key.project


def test_from_legacy_urlsafe_app_engine_example() -> None:
    # python-datastore tests/unit/test_key.py _URLSAFE_EXAMPLE1, captured in a running App
    # Engine app: ndb.Key('Parent', 59, 'Child', 'Feather', namespace='space', app='s~sample-app')
    urlsafe = b"agxzfnNhbXBsZS1hcHByHgsSBlBhcmVudBg7DAsSBUNoaWxkIgdGZWF0aGVyDKIBBXNwYWNl"
    key = Key.from_legacy_urlsafe(urlsafe)
    assert key == Key("Parent", 59, "Child", "Feather", project="sample-app", namespace="space")
    assert key.to_legacy_urlsafe(location_prefix="s~") == urlsafe


def test_to_legacy_urlsafe_rejects_a_database() -> None:
    with pytest.raises(ValueError) as info:
        Key("K", 1, project="p", database="db").to_legacy_urlsafe()
    assert info.value.args == ("to_legacy_urlsafe only supports the default database",)


@given(_key_args(), st.sampled_from([None, "s~", "e~", "dev~"]))
def test_to_legacy_urlsafe_matches_official(
    case: tuple[tuple[Any, ...], dict[str, Any]], prefix: str | None
) -> None:
    args, kwargs = case
    ours = _outcome(lambda: Key(*args, **kwargs).to_legacy_urlsafe(location_prefix=prefix))
    theirs = _outcome(
        lambda: OfficialKey(*args, **kwargs).to_legacy_urlsafe(location_prefix=prefix)
    )
    if isinstance(theirs, Exception):
        _assert_same_error(ours, theirs)
    else:
        assert ours == theirs


@given(_key_args(), st.sampled_from([None, "s~"]), st.booleans())
def test_from_legacy_urlsafe_matches_official(
    case: tuple[tuple[Any, ...], dict[str, Any]], prefix: str | None, as_text: bool
) -> None:
    args, kwargs = case
    kwargs.pop("database", None)  # legacy urlsafe supports only the default database
    urlsafe: bytes | str = OfficialKey(*args, **kwargs).to_legacy_urlsafe(location_prefix=prefix)
    if as_text:
        assert isinstance(urlsafe, bytes)
        urlsafe = urlsafe.decode("ascii")
    ours = _outcome(lambda: Key.from_legacy_urlsafe(urlsafe))
    theirs = _outcome(lambda: OfficialKey.from_legacy_urlsafe(urlsafe))
    if isinstance(theirs, Exception):
        _assert_same_error(ours, theirs)
    else:
        assert _describe(ours) == _describe(theirs)


@given(ds.complete_keys(project=st.sampled_from(["p", "proj-1"]), namespace=ds.namespaces))
def test_urlsafe_round_trip(key: Key) -> None:
    again = Key.from_legacy_urlsafe(key.to_legacy_urlsafe())
    assert again == key
    assert again.flat_path == key.flat_path


def _reference(
    elements: list[dict[str, Any]], app: str = "p", database_id: str | None = None
) -> bytes:
    ref = _app_engine_key_pb2.Reference(app=app)
    for fields in elements:
        ref.path.element.append(_app_engine_key_pb2.Path.Element(**fields))
    if database_id is not None:
        ref.database_id = database_id
    return base64.urlsafe_b64encode(ref.SerializeToString()).strip(b"=")


@pytest.mark.parametrize(
    "urlsafe",
    [
        pytest.param(_reference([{"type": "K", "id": 1}], database_id="db"), id="database-id"),
        pytest.param(_reference([{"type": "K", "id": 1, "name": "x"}]), id="id-and-name"),
        pytest.param(_reference([{"type": "K"}, {"type": "L", "id": 1}]), id="empty-not-last"),
    ],
)
def test_from_legacy_urlsafe_errors_match_official(urlsafe: bytes) -> None:
    ours = _outcome(lambda: Key.from_legacy_urlsafe(urlsafe))
    theirs = _outcome(lambda: OfficialKey.from_legacy_urlsafe(urlsafe))
    assert isinstance(ours, ValueError)
    _assert_same_error(ours, theirs)


def test_from_legacy_urlsafe_partial_last_element() -> None:
    # SEMANTICS.md §1.5: an element with neither id nor name is allowed as the last one
    key = Key.from_legacy_urlsafe(_reference([{"type": "P", "id": 3}, {"type": "K"}]))
    assert key.is_partial
    assert key.flat_path == ("P", 3, "K")


def test_negative_id_round_trips_through_urlsafe() -> None:
    # proto int64: negative ids are ten-byte varints
    key = Key("K", -5, project="p")
    assert key.to_legacy_urlsafe() == OfficialKey("K", -5, project="p").to_legacy_urlsafe()
    assert Key.from_legacy_urlsafe(key.to_legacy_urlsafe()).id == -5
