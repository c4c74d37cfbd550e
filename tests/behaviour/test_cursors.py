"""Cursors, limit, offset and ``more_results``: one test per rule of SEMANTICS.md §4.6.

Decisions recorded in the issue, tested as specified: ``next_page_token`` is bytes
(URL-safe base64) or None, None exactly when the query is finished (Firestore-emulator
column of §4.6); resuming with ``start_cursor`` continues strictly after the last returned
position, even if that entity was deleted; ``end_cursor`` stops; a tampered cursor or a
cursor of another query is ``InvalidArgument``; an entity with array values appears once
across pages (a deliberate improvement over Datastore, §3.3).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datastore_lite import Client, Entity
from datastore_lite.exceptions import InvalidArgument
from datastore_lite.query import PropertyFilter, Query


def put(client: Client, kind: str, ident: Any, **props: Any) -> Entity:
    entity = Entity(client.key(kind, ident))
    entity.update(props)
    client.put(entity)
    return entity


@pytest.fixture
def ten(client: Client) -> Client:
    """T/1..T/10 with n = 1..10 and parity."""
    for ident in range(1, 11):
        put(client, "T", ident, n=ident, odd=ident % 2 == 1)
    return client


def page(q: Query, **fetch: Any) -> tuple[list[Any], Any]:
    """One fetch: the result ids and the iterator's ``next_page_token`` afterwards."""
    iterator = q.fetch(**fetch)
    ids = [e.key.id_or_name for e in iterator]
    return ids, iterator.next_page_token


def paged(q: Query, size: int, **first: Any) -> list[list[Any]]:
    """All pages of ``size`` results, resuming each time from the previous token."""
    pages = []
    ids, token = page(q, limit=size, **first)
    pages.append(ids)
    while token is not None:
        ids, token = page(q, limit=size, start_cursor=token)
        pages.append(ids)
        assert len(pages) < 50, "paging does not end"
    return pages


# -- more_results / next_page_token --------------------------------------------------------------


def test_s4_6_no_limit_finishes_with_no_token(ten: Client) -> None:
    ids, token = page(ten.query(kind="T"))
    assert ids == list(range(1, 11))
    assert token is None


def test_s4_6_limit_below_the_count_leaves_a_token(ten: Client) -> None:
    ids, token = page(ten.query(kind="T"), limit=3)
    assert ids == [1, 2, 3]
    assert token is not None


@pytest.mark.parametrize("limit", [10, 11])
def test_s4_6_limit_reaching_the_end_leaves_no_token(ten: Client, limit: int) -> None:
    ids, token = page(ten.query(kind="T"), limit=limit)
    assert ids == list(range(1, 11))
    assert token is None


def test_s4_6_limit_zero_returns_nothing_but_a_token(ten: Client) -> None:
    ids, token = page(ten.query(kind="T"), limit=0)
    assert ids == []
    assert token is not None
    rest, _ = page(ten.query(kind="T"), start_cursor=token)
    assert rest == list(range(1, 11))


def test_s4_6_offset_past_the_end_returns_nothing_and_no_token(ten: Client) -> None:
    ids, token = page(ten.query(kind="T"), offset=20)
    assert ids == []
    assert token is None


def test_s4_6_offset_skips_results(ten: Client) -> None:
    q = ten.query(kind="T")
    q.add_filter(filter=PropertyFilter("odd", "=", True))
    assert page(q, offset=2) == ([5, 7, 9], None)
    ids, token = page(q, offset=1, limit=2)
    assert ids == [3, 5] and token is not None
    assert page(q, start_cursor=token) == ([7, 9], None)


def test_s4_6_token_is_urlsafe_base64_bytes(ten: Client) -> None:
    _, token = page(ten.query(kind="T", order=["-n"]), limit=4)
    assert isinstance(token, bytes)
    decoded = base64.urlsafe_b64decode(token)
    assert decoded and base64.urlsafe_b64encode(decoded) == token
    assert set(token) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def test_s4_6_pages_of_an_unlimited_query_cover_everything(client: Client) -> None:
    """A query without a limit may come in several bounded batches (DESIGN.md §3)."""
    for start in (1, 351):  # at most 500 mutations per commit
        with client.batch():
            for ident in range(start, start + 350):
                entity = Entity(client.key("T", ident))
                entity["n"] = ident
                client.put(entity)
    iterator = client.query(kind="T").fetch()
    seen = [e.key.id for p in iterator.pages for e in p]
    assert seen == list(range(1, 701))
    assert iterator.next_page_token is None


# -- resuming ------------------------------------------------------------------------------------


def test_s4_6_start_cursor_resumes_strictly_after_the_last_result(ten: Client) -> None:
    q = ten.query(kind="T", order=["-n"])
    assert paged(q, 3) == [[10, 9, 8], [7, 6, 5], [4, 3, 2], [1]]


def test_s4_6_start_cursor_accepts_bytes_and_str(ten: Client) -> None:
    q = ten.query(kind="T")
    _, token = page(q, limit=4)
    assert token is not None
    assert page(q, limit=2, start_cursor=token)[0] == [5, 6]
    assert page(q, limit=2, start_cursor=token.decode("ascii"))[0] == [5, 6]


def test_s4_6_cursor_still_works_after_its_entity_is_deleted(ten: Client) -> None:
    """§10.13: resuming after a deleted last entity -> the rest, from 5."""
    q = ten.query(kind="T")
    ids, token = page(q, limit=4)
    assert ids == [1, 2, 3, 4]
    ten.delete(ten.key("T", 4))
    assert page(q, start_cursor=token) == ([5, 6, 7, 8, 9, 10], None)


def test_s4_6_cursor_is_a_position_not_an_offset(ten: Client) -> None:
    """Entities inserted before the position are not returned; after it, they are."""
    q = ten.query(kind="T", order=["n"])
    _, token = page(q, limit=3)
    put(ten, "T", 100, n=0)  # sorts before the cursor
    put(ten, "T", 101, n=5)  # ties with T/5 on n, after it by key
    ten.delete(ten.key("T", 1))
    assert page(q, start_cursor=token)[0] == [4, 5, 101, 6, 7, 8, 9, 10]


def test_s4_6_cursor_of_an_inequality_query(ten: Client) -> None:
    q = ten.query(kind="T")
    q.add_filter(filter=PropertyFilter("n", ">", 3))
    assert paged(q, 2) == [[4, 5], [6, 7], [8, 9], [10]]


def test_s4_6_cursor_with_ties_on_the_sort_value(client: Client) -> None:
    for ident, n in [(1, 2), (2, 1), (3, 2), (4, 1), (5, 2), (6, 1)]:
        put(client, "T", ident, n=n)
    q = client.query(kind="T", order=["-n"])
    assert [i for p in paged(q, 2) for i in p] == [1, 3, 5, 2, 4, 6]


def test_s4_6_cursor_of_a_mixed_type_sort(client: Client) -> None:
    values = [None, -5, 3, True, "a", b"\x00", 1.5, float("nan")]
    for ident, value in enumerate(values, start=1):
        put(client, "T", 9 - ident, v=value)
    q = client.query(kind="T", order=["v"])
    # b"\x00" (T/3) sorts before "a" (T/4): str and bytes compare as bytes (§2.1)
    assert [i for p in paged(q, 3) for i in p] == [8, 7, 6, 5, 3, 4, 2, 1]


def test_s4_6_cursor_of_a_keys_only_query(ten: Client) -> None:
    q = ten.query(kind="T", order=["-n"])
    q.keys_only()
    assert [i for p in paged(q, 4) for i in p] == list(range(10, 0, -1))


def test_s4_6_cursor_of_a_projection_query(client: Client) -> None:
    """Projection rows resume by (value, key): T/1 has the larger value, T/2 the smaller."""
    put(client, "T", 1, y=5)
    put(client, "T", 2, y=3)
    put(client, "T", 3, y=[1, 9])
    q = client.query(kind="T", projection=["y"])
    iterator = q.fetch(limit=2)
    first = [(e.key.id, e["y"]) for e in iterator]
    rest = [(e.key.id, e["y"]) for e in q.fetch(start_cursor=iterator.next_page_token)]
    assert first + rest == [(3, 1), (2, 3), (1, 5), (3, 9)]
    assert first == [(3, 1), (2, 3)]


def test_s4_6_cursor_of_a_distinct_query(client: Client) -> None:
    """Emulator: distinct results resume after the last group, with no value repeated."""
    for ident, a in [(1, 2), (2, 1), (3, 2), (4, 3), (5, 1)]:
        put(client, "T", ident, a=a)
    q = client.query(kind="T", projection=["a"], distinct_on=["a"])
    assert [i for p in paged(q, 1) for i in p] == [2, 1, 4]


def test_s4_6_cursor_of_an_or_query(client: Client) -> None:
    from datastore_lite.query import Or

    for ident in range(1, 9):
        put(client, "T", ident, a=ident % 3, b=ident % 4)
    q = client.query(kind="T")
    q.add_filter(filter=Or([PropertyFilter("a", "=", 0), PropertyFilter("b", "=", 0)]))
    assert [i for p in paged(q, 1) for i in p] == [3, 4, 6, 8]


def test_s4_6_entity_with_array_values_appears_once_across_pages(client: Client) -> None:
    """datastore_lite keeps the §3.3 no-duplicate promise across cursors, at the entity's
    first index entry (Datastore may repeat it after a cursor)."""
    data = {"a": [1, 9], "b": [5], "c": [3, 7], "d": None, "e": [], "f": "str", "g": [2, "x"]}
    for name, value in data.items():
        put(client, "T", name, x=value)
    for order, expected in [
        (["x"], ["d", "e", "a", "g", "c", "b", "f"]),
        (["-x"], ["g", "f", "a", "c", "b", "d", "e"]),
    ]:
        q = client.query(kind="T", order=order)
        assert [i for p in paged(q, 1) for i in p] == expected
        assert [i for p in paged(q, 2) for i in p] == expected


def test_s4_6_offset_is_not_applied_again_with_a_start_cursor(ten: Client) -> None:
    """The official client drops the offset when a start cursor is given."""
    q = ten.query(kind="T")
    _, token = page(q, limit=2)
    assert page(q, limit=3, offset=5, start_cursor=token)[0] == [3, 4, 5]


# -- end_cursor ----------------------------------------------------------------------------------


def test_s4_6_end_cursor_stops_the_results(ten: Client) -> None:
    q = ten.query(kind="T", order=["-n"])
    _, stop = page(q, limit=4)
    assert page(q, end_cursor=stop)[0] == [10, 9, 8, 7]
    _, start = page(q, limit=1)
    assert page(q, start_cursor=start, end_cursor=stop)[0] == [9, 8, 7]


# -- bad cursors ---------------------------------------------------------------------------------


def _flip(token: bytes, position: int) -> bytes:
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[position % len(raw)] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw))


def test_s4_6_tampered_cursor_is_invalid_argument(ten: Client) -> None:
    q = ten.query(kind="T", order=["n"])
    _, token = page(q, limit=3)
    assert token is not None
    length = len(base64.urlsafe_b64decode(token))
    for position in range(length):
        with pytest.raises(InvalidArgument):
            page(q, start_cursor=_flip(token, position))


@pytest.mark.parametrize(
    "garbage",
    [base64.urlsafe_b64encode(b"not a cursor"), b"AAAA", base64.urlsafe_b64encode(b"\x01" * 64)],
    ids=["text", "zeros", "ones"],
)
def test_s4_6_garbage_cursor_is_invalid_argument(ten: Client, garbage: bytes) -> None:
    """(An empty cursor is no cursor, as in the v1 API.)"""
    with pytest.raises(InvalidArgument):
        page(ten.query(kind="T"), start_cursor=garbage)


def test_s4_6_garbage_end_cursor_is_invalid_argument(ten: Client) -> None:
    with pytest.raises(InvalidArgument):
        page(ten.query(kind="T"), end_cursor=base64.urlsafe_b64encode(b"\x00" * 40))


def test_s4_6_truncated_cursor_is_invalid_argument(ten: Client) -> None:
    _, token = page(ten.query(kind="T"), limit=3)
    assert token is not None
    raw = base64.urlsafe_b64decode(token)
    with pytest.raises(InvalidArgument):
        page(ten.query(kind="T"), start_cursor=base64.urlsafe_b64encode(raw[:-3]))


@pytest.mark.parametrize(
    "other",
    [
        {"kind": "U", "order": ["n"]},
        {"order": ["-n"]},
        {"filters": [("n", ">", 2)], "order": ["n"]},
        {"filters": [("odd", "=", True)]},
        {"ancestor": ("T", 1)},
        {},
    ],
    ids=["kind", "order", "inequality", "equality", "ancestor", "no order"],
)
def test_s4_6_cursor_of_another_query_is_invalid_argument(
    ten: Client, other: dict[str, Any]
) -> None:
    """Every one of these is served by built-in indexes; the cursor came from ORDER BY n."""
    _, token = page(ten.query(kind="T", order=["n"]), limit=3)
    assert token is not None
    q = ten.query(kind=other.get("kind", "T"), order=other.get("order", ()))
    for flt in other.get("filters", ()):
        q.add_filter(filter=PropertyFilter(*flt))
    if "ancestor" in other:
        q.ancestor = ten.key(*other["ancestor"])
    with pytest.raises(InvalidArgument):
        page(q, start_cursor=token)


def test_s4_6_cursor_from_another_database_is_invalid_argument(
    make_client: Callable[..., Client], tmp_path: Path
) -> None:
    """Cursors are signed with the database secret (DESIGN.md §10)."""
    first = make_client(url=f"sqlite:///{tmp_path}/one.db")
    second = make_client(url=f"sqlite:///{tmp_path}/two.db")
    for client in (first, second):
        for ident in range(1, 5):
            put(client, "T", ident, n=ident)
    _, token = page(first.query(kind="T"), limit=2)
    with pytest.raises(InvalidArgument):
        page(second.query(kind="T"), start_cursor=token)


def test_s4_6_non_base64_cursor_is_rejected(ten: Client) -> None:
    """The official client decodes the token itself (binascii.Error on bad padding)."""
    with pytest.raises((InvalidArgument, binascii.Error, ValueError)):
        page(ten.query(kind="T"), start_cursor=b"!!!not*base64")
