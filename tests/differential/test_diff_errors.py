"""Validation errors: same exception class and same ``str(exc)`` as the emulator.

Each case runs one invalid operation through the official client (on Google's emulator)
and through datastore_lite, and requires the same exception class name and message text
(SEMANTICS.md §1.2, §2.1, §3.2, §6.1, §6.2, §7.1). Where the emulator does not enforce a
production limit, datastore_lite is checked against production's text instead (see
``test_limits_the_emulator_does_not_enforce``). The texts captured here are listed, with
provenance, in ``tests/golden/emulator_texts.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tests.differential.harness import Raised, Side

pytestmark = pytest.mark.emulator

Op = Callable[[Side], Any]
NAN = float("nan")
LONG = "x" * 1501  # one byte over the 1500-byte limit of names and indexed values


def put(
    *path: Any, exclude: tuple[str, ...] = (), namespace: str | None = None, **props: Any
) -> Op:
    """An op that puts one entity; ``props`` values may be callables of the side."""

    def op(side: Side) -> None:
        values = {name: v(side) if callable(v) else v for name, v in props.items()}
        key = side.key(*path, namespace=namespace)
        side.client.put(side.entity(key, exclude_from_indexes=exclude, **values))

    return op


def named(name: str, value: Any) -> dict[str, Any]:
    """``{name: value}`` for property names that are not identifiers."""
    return {name: value}


def get(*path: Any, namespace: str | None = None) -> Op:
    return lambda side: side.client.get(side.key(*path, namespace=namespace))


def delete(*path: Any, namespace: str | None = None) -> Op:
    return lambda side: side.client.delete(side.key(*path, namespace=namespace))


def allocate(*path: Any, namespace: str | None = None) -> Op:
    return lambda side: side.client.allocate_ids(side.key(*path, namespace=namespace), 1)


def key(*path: Any, namespace: str | None = None) -> Callable[[Side], Any]:
    """A key-valued property (built per side)."""
    return lambda side: side.key(*path, namespace=namespace)


def geo(latitude: float, longitude: float) -> Callable[[Side], Any]:
    return lambda side: side.GeoPoint(latitude, longitude)


def nested(depth: int, *, entities: bool = False) -> Callable[[Side], Any]:
    """A value ``depth`` embedded entities deep (``{"x": {"x": ... {"leaf": 1}}}``)."""

    def build(side: Side) -> Any:
        value: Any = side.entity(leaf=1) if entities else {"leaf": 1}
        for _ in range(depth - 1):
            value = side.entity(x=value) if entities else {"x": value}
        return value

    return build


def in_transaction(*ops: Op) -> Op:
    def op(side: Side) -> None:
        with side.client.transaction():
            for each in ops:
                each(side)

    return op


def _conflict_on_missing_read(side: Side) -> None:
    """A transaction reads a missing key in a namespace never written; another client
    writes it; the transaction's commit must fail (the read recorded a group snapshot)."""
    key_ = side.key("X", 1, namespace="fresh")
    txn = side.client.transaction()
    txn.begin()
    side.client.get(key_, transaction=txn)
    side.client.put(side.entity(key_, v="outside"))
    txn.put(side.entity(key_, v="inside"))
    txn.commit()


def path_of(elements: int) -> tuple[Any, ...]:
    return tuple(itertools.chain.from_iterable(("K", i + 1) for i in range(elements)))


# -- errors both must raise identically -----------------------------------------------------

ERROR_GROUPS: dict[str, dict[str, Op]] = {
    "keys": {
        # SEMANTICS.md §1.2: kinds
        "kind-empty": put("", 1),
        "kind-empty-partial": put(""),
        "kind-empty-allocate": allocate(""),
        "kind-too-long": put("k" * 1501, 1),
        "kind-too-long-utf8": put("é" * 751, 1),
        "kind-too-long-get": get("k" * 1501, 1),
        "kind-reserved": put("__Foo__", 1),
        "kind-reserved-partial": put("__Foo__"),
        "kind-reserved-child": put("A", 1, "__Foo__", 1),
        "kind-reserved-delete": delete("__Foo__", 1),
        # names
        "name-empty": put("K", ""),
        "name-empty-get": get("K", ""),
        "name-too-long": put("K", LONG),
        "name-too-long-get": get("K", LONG),
        "name-reserved": put("K", "__x__"),
        "name-reserved-parent": put("K", "__x__", "C", 1),
        "name-reserved-delete": delete("K", "__x__"),
        # ids
        "id-zero": put("K", 0),
        "id-zero-get": get("K", 0),
        "id-zero-parent": put("K", 0, "C", 1),
        "id-zero-delete": delete("K", 0),
        "id-zero-allocate-parent": allocate("P", 0, "K"),
        # ids outside int64: the official client refuses them client-side (protobuf)
        "id-too-big": put("K", 2**63),
        "id-too-small": put("K", -(2**63) - 1),
        "id-too-big-get": get("K", 2**63),
        # path depth
        "path-101": put(*path_of(101)),
        "path-101-get": get(*path_of(101)),
        "path-101-partial": put(*path_of(100), "K"),
    },
    "namespaces": {
        # namespaces
        "namespace-reserved": put("K", 1, namespace="__x__"),
        "namespace-reserved-delete": delete("K", 1, namespace="__x__"),
        "namespace-reserved-allocate": allocate("K", namespace="__x__"),
        # AllocateIds is validated like a write
        "kind-reserved-allocate": allocate("__Foo__"),
        "namespace-space": put("K", 1, namespace="a b"),
        "namespace-space-get": get("K", 1, namespace="a b"),
        "namespace-101-chars": put("K", 1, namespace="n" * 101),
        "namespace-non-ascii": put("K", 1, namespace="é"),
    },
    "key-values": {
        # partial keys where a complete key is required
        "partial-lookup": get("Other"),
        "partial-lookup-child": get("A", 1, "Other"),
        "partial-key-property": put("K", 1, r=key("Other")),
        "partial-key-property-child": put("K", 1, r=key("A", "n", "Other")),
        "partial-key-in-list": put("K", 1, r=lambda side: [key("Other")(side)]),
        # key-valued properties are validated like keys (but reserved kinds are fine)
        "key-property-id-zero": put("K", 1, r=key("Other", 0)),
        "key-property-empty-kind": put("K", 1, r=key("", 1)),
        "key-property-bad-namespace": put("K", 1, r=key("O", 1, namespace="a b")),
        "key-property-long-name": put("K", 1, r=key("O", LONG)),
        "embedded-key-id-zero": put("K", 1, m=lambda side: side.entity(side.key("E", 0), a=1)),
    },
    "property-names": {
        # property names
        "property-reserved": put("K", 1, __foo__=1),
        "property-too-long": put("K", 1, **named(LONG, 1)),
        "property-empty": put("K", 1, **named("", 1)),
        "property-reserved-embedded": put("K", 1, m={"__foo__": 1}),
        "property-empty-embedded": put("K", 1, m={"": 1}),
    },
    "values": {
        # SEMANTICS.md §2.1: lists and nesting
        "nested-list": put("K", 1, l=[[1]]),
        "nested-list-in-embedded": put("K", 1, m={"l": [1, [2]]}),
        "depth-21": put("K", 1, m=nested(21)),
        "depth-22": put("K", 1, m=nested(22)),
        "depth-21-entities": put("K", 1, m=nested(21, entities=True)),
        "depth-21-excluded": put("K", 1, m=nested(21), exclude=("m",)),
        "depth-21-in-list": put("K", 1, m=lambda side: [nested(21)(side)]),
        # SEMANTICS.md §3.2: indexed string / bytes values
        "indexed-str-1501": put("K", 1, s=LONG),
        "indexed-str-utf8-1501": put("K", 1, s="é" * 750 + "x"),
        "indexed-bytes-1501": put("K", 1, s=b"x" * 1501),
        "indexed-str-in-list": put("K", 1, s=["a", LONG]),
        "indexed-str-embedded": put("K", 1, m={"s": LONG}),
        "indexed-str-embedded-deep": put("K", 1, m={"n": {"s": LONG}}),
        "indexed-str-embedded-in-list": put("K", 1, m=[{"s": LONG}]),
        # excluding the embedded entity does not exclude its sub-properties (emulator)
        "indexed-str-embedded-parent-excluded": put("K", 1, m={"s": LONG}, exclude=("m",)),
    },
    "geo-points": {
        # geo points
        "geo-latitude-91": put("K", 1, g=geo(91, 0)),
        "geo-latitude-minus-90.5": put("K", 1, g=geo(-90.5, 0)),
        "geo-longitude-181": put("K", 1, g=geo(0, 181)),
        "geo-longitude-minus-180.5": put("K", 1, g=geo(0, -180.5)),
        "geo-both-out": put("K", 1, g=geo(91, 181)),
        "geo-latitude-inf": put("K", 1, g=geo(float("inf"), 0)),
        "geo-longitude-minus-inf": put("K", 1, g=geo(0, float("-inf"))),
        "geo-latitude-nan": put("K", 1, g=geo(NAN, 0)),
        "geo-longitude-nan": put("K", 1, g=geo(0, NAN)),
        "geo-latitude-out-longitude-nan": put("K", 1, g=geo(91, NAN)),
        "geo-latitude-nan-longitude-out": put("K", 1, g=geo(NAN, 181)),
    },
    "commits": {
        # SEMANTICS.md §6.1 / §6.2: commits
        "txn-26-groups": in_transaction(*(put("G", i + 1) for i in range(26))),
        "non-txn-duplicate-put": lambda side: side.client.put_multi(
            [side.entity(side.key("K", 1)), side.entity(side.key("K", 1))]
        ),
        "non-txn-duplicate-delete": lambda side: side.client.delete_multi(
            [side.key("K", 1), side.key("K", 1)]
        ),
        "non-txn-put-then-delete": lambda side: _batch_put_delete(side),
    },
    "new-partitions": {
        # SEMANTICS.md §6.1: reads in a store / namespace with nothing in it yet still
        # snapshot their groups, so they count toward the limit and are conflict-checked.
        # The cases run in order on one store: the first needs it empty.
        "txn-26-groups-read-in-empty-store": in_transaction(*(get("G", i + 1) for i in range(26))),
        "txn-conflict-after-read-in-empty-namespace": _conflict_on_missing_read,
    },
    "client-side": {
        # client-side checks (SEMANTICS.md §8), run before anything is sent
        "int-too-big": put("K", 1, i=2**63),
        "int-too-small": put("K", 1, i=-(2**63) - 1),
        "unknown-type": put("K", 1, i=object()),
        "entity-without-key": lambda side: side.client.put(side.Entity()),
        "put-multi-of-entity": lambda side: side.client.put_multi(side.entity(side.key("K", 1))),
        "put-other-project": lambda side: side.client.put(
            side.Entity(side.Key("K", 1, project="other"))
        ),
        "delete-partial": delete("K"),
        "delete-other-project": lambda side: side.client.delete(side.Key("K", 1, project="other")),
        "get-other-project": lambda side: side.client.get(side.Key("K", 1, project="other")),
        "allocate-complete-key": lambda side: side.client.allocate_ids(side.key("K", 1), 1),
    },
}
ERRORS: dict[str, Op] = {name: op for group in ERROR_GROUPS.values() for name, op in group.items()}


def _batch_put_delete(side: Side) -> None:
    with side.client.batch() as batch:
        batch.put(side.entity(side.key("K", 1)))
        batch.delete(side.key("K", 1))


def _compare(sides: tuple[Side, Side], op: Op) -> tuple[Any, Any]:
    """Run ``op`` on both sides; return the (official, lite) exceptions or results."""
    results = []
    for side in sides:
        try:
            results.append(op(side))
        except Exception as exc:  # the point is to compare whatever is raised
            results.append(exc)
    return results[0], results[1]


def _mismatches(sides: tuple[Side, Side], cases: dict[str, Op]) -> list[str]:
    """Run each case on both sides; describe those where the emulator accepted the
    operation or datastore_lite raised something else (another class or text, or an
    exception the official one does not catch as the same api_core class)."""
    problems = []
    for case, op in cases.items():
        official_exc, lite_exc = _compare(sides, op)
        if not isinstance(official_exc, Exception):
            problems.append(f"{case}: the emulator accepted it ({official_exc!r})")
        elif described(lite_exc) != described(official_exc):
            problems.append(
                f"{case}:\n  emulator {described(official_exc)}\n  lite     {described(lite_exc)}"
            )
        elif not isinstance(lite_exc, type(official_exc)):
            # drop-in: `except google.api_core.exceptions.InvalidArgument` catches ours too
            problems.append(f"{case}: {type(lite_exc).__mro__} is not a {type(official_exc)}")
    return problems


# Cases run in groups (a loop per group) to keep the suite fast; a failure lists every
# case of the group that differs, by the case ids of ERROR_GROUPS.
@pytest.mark.parametrize("group", list(ERROR_GROUPS))
def test_error_texts_match_the_emulator(sides: tuple[Side, Side], group: str) -> None:
    problems = _mismatches(sides, ERROR_GROUPS[group])
    assert not problems, "\n".join(problems)


def described(value: Any) -> Any:
    """An exception as :class:`Raised` (class name, ``str``); other values unchanged."""
    if isinstance(value, Exception):
        return Raised(type(value).__name__, str(value))
    return value


# -- operations both must accept ------------------------------------------------------------

ACCEPTED: dict[str, Op] = {
    "kind-1500-bytes": put("k" * 1500, 1),
    "kind-double-underscore-only": put("__", 1),
    "kind-triple-underscore": put("___", 1),
    "kind-leading-underscores": put("__x", 1),
    "kind-reserved-get": get("__Foo__", 1),
    "name-1500-bytes": put("K", "n" * 1500),
    "name-reserved-get": get("K", "__x__"),
    # reserved namespaces may be read and named by key values; only writes are refused
    "namespace-reserved-get": get("K", 1, namespace="__x__"),
    "key-property-reserved-namespace": put("K", 1, r=key("O", 1, namespace="__n__")),
    "id-negative": put("K", -1),
    "id-int64-min": put("K", -(2**63)),
    "id-int64-max": put("K", 2**63 - 1),
    "path-100": put(*path_of(100)),
    "namespace-100-chars": put("K", 1, namespace="n" * 100),
    "namespace-punctuation": put("K", 1, namespace="a.b-c_D9"),
    "indexed-str-1500": put("K", 1, s="é" * 750),
    "indexed-bytes-1500": put("K", 1, s=b"x" * 1500),
    "unindexed-str-1501": put("K", 1, s=LONG, exclude=("s",)),
    "unindexed-list-1501": put("K", 1, s=[LONG, b"y" * 1501], exclude=("s",)),
    "key-property-reserved-kind": put("K", 1, r=key("__Other__", 1)),
    "key-property-other-project": put("K", 1, r=lambda side: side.Key("O", 1, project="p2")),
    "embedded-partial-key": put("K", 1, m=lambda side: side.entity(side.key("E"), a=1)),
    "embedded-reserved-kind-key": put("K", 1, m=lambda side: side.entity(side.key("__E__", 1))),
    "property-dotted": put("K", 1, **named("a.b", 1)),
    "property-1500-bytes": put("K", 1, **named("p" * 1500, 1)),
    "depth-20": put("K", 1, m=nested(20)),
    "geo-corners": put("K", 1, g=lambda side: [geo(90, -180)(side), geo(-90.0, 180.0)(side)]),
    "txn-25-groups": in_transaction(*(put("G", i + 1) for i in range(25))),
    "txn-same-key-twice": in_transaction(put("G", 1, a=1), put("G", 1, a=2)),
    "txn-put-then-delete": in_transaction(put("G", 1), delete("G", 1)),
    "non-txn-two-partial-keys": lambda side: side.client.put_multi(
        [side.entity(side.key("K")), side.entity(side.key("K"))]
    ),
    "allocate-zero-ids": lambda side: side.client.allocate_ids(side.key("K"), 0),
}


def test_both_accept(sides: tuple[Side, Side]) -> None:
    problems = []
    for case, op in ACCEPTED.items():
        official_got, lite_got = _compare(sides, op)
        if isinstance(official_got, Exception):
            problems.append(f"{case}: the emulator rejected it: {described(official_got)}")
        elif described(lite_got) != described(official_got):  # None, or [] for 0 ids
            problems.append(f"{case}: emulator {official_got!r}, lite {described(lite_got)}")
    assert not problems, "\n".join(problems)


# -- known differences (DIFF: fix outside _limits.py, then remove the xfail) --------------------


def _diff(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"DIFF: {reason}")


KNOWN_DIFFERENCES = [
    pytest.param(
        put("K", 1, l=[[]]),
        id="nested-empty-list",
        marks=_diff(
            "the emulator accepts an empty list inside a list and reads back [[]] "
            "(maybe an emulator quirk); lite rejects it as a nested list"
        ),
    ),
]


@pytest.mark.parametrize("op", KNOWN_DIFFERENCES)
def test_known_difference(sides: tuple[Side, Side], op: Op) -> None:
    official_got, lite_got = _compare(sides, op)
    assert described(lite_got) == described(official_got)


# -- limits the emulator does not enforce: production texts ---------------------------------


def _put_many(count: int) -> Op:
    return lambda side: side.client.put_multi(
        [side.entity(side.key("K", i + 1)) for i in range(count)]
    )


def _get_many(count: int) -> Op:
    return lambda side: side.client.get_multi([side.key("K", i + 1) for i in range(count)])


# The legacy emulator accepts all of these (SEMANTICS.md §3.2, §7.1); datastore_lite
# enforces production's limits, so it is checked against production's text, and the
# emulator's acceptance is asserted so a future emulator that enforces them is noticed.
NOT_ENFORCED_BY_EMULATOR = [
    # production: INVALID_ARGUMENT "cannot write more than 500 entities in a single call"
    pytest.param(
        _put_many(501),
        "400 cannot write more than 500 entities in a single call",
        id="501-mutations",
    ),
    # production: INVALID_ARGUMENT "cannot get more than 1000 keys in a single call"
    pytest.param(
        _get_many(1001),
        "400 cannot get more than 1000 keys in a single call",
        id="1001-lookup-keys",
    ),
    # production limit 1,048,487 bytes; text from the Firestore emulator (datastore mode)
    pytest.param(
        put("K", 1, s="x" * 1_048_488, exclude=("s",)),
        '400 The value of property "s" is longer than 1048487 bytes.',
        id="unindexed-1048488-bytes",
    ),
    # production: INVALID_ARGUMENT "entity is too big" (nothing appended)
    pytest.param(
        put("K", 1, s="x" * 600_000, t="y" * 600_000, exclude=("s", "t")),
        "400 entity is too big",
        id="entity-too-big",
    ),
]


@pytest.mark.parametrize("op, production_text", NOT_ENFORCED_BY_EMULATOR)
def test_limits_the_emulator_does_not_enforce(
    sides: tuple[Side, Side], op: Op, production_text: str
) -> None:
    official_got, lite_got = _compare(sides, op)
    assert not isinstance(official_got, Exception), "the emulator now enforces this limit"
    assert type(lite_got).__name__ == "InvalidArgument"
    assert str(lite_got) == production_text


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(_put_many(500), id="500-mutations"),
        pytest.param(_get_many(1000), id="1000-keys"),
    ],
)
def test_limits_are_inclusive(sides: tuple[Side, Side], op: Op) -> None:
    official_got, lite_got = _compare(sides, op)
    assert not isinstance(official_got, Exception)
    assert not isinstance(lite_got, Exception), repr(lite_got)
    assert lite_got == official_got
