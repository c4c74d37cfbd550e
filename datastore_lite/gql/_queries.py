"""The query objects GQL builds: a Query and an AggregationQuery that keep the text's
LIMIT, OFFSET and cursors."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from .. import exceptions
from .._queryspec import ResultBatch
from ..aggregation import (
    AggregationQuery,
    AggregationResult,
    AggregationResultIterator,
    CountAggregation,
)
from ..query import Iterator, Page, Query, _decode_token

if TYPE_CHECKING:
    from ..client import Client


# -- the query objects ----------------------------------------------------------------------


class GqlQuery(Query):
    """A :class:`~datastore_lite.query.Query` made from GQL, with the text's LIMIT and OFFSET.

    ``fetch()`` with no arguments applies the text's ``LIMIT``, ``OFFSET`` and cursor
    bindings; an argument passed to ``fetch()`` replaces the matching value (``None`` keeps
    it). They are also plain attributes: ``limit``, ``offset``, ``start_cursor``,
    ``end_cursor``. Everything else is an ordinary ``Query`` (``kind``, ``filters``,
    ``order``, ``projection``, ``distinct_on``, ``ancestor``), which may be changed before
    fetching.

    ``OFFSET @cursor + n`` starts at the cursor and then skips ``n`` results. (Passing
    ``start_cursor`` to ``fetch()`` follows the official client instead: a cursor from an
    earlier page already counts the offset, so ``offset`` is then ignored.)

    Example:
        >>> from datastore_lite import Client
        >>> client = Client(project="doc", url="sqlite://", consistency="strong")
        >>> query = client.gql("SELECT * FROM Photo WHERE likes > @n LIMIT 5", n=10)
        >>> query.kind, query.filters, query.limit
        ('Photo', [('likes', '>', 10)], 5)
    """

    def __init__(
        self,
        client: Client,
        *,
        query_string: str = "",
        limit: int | None = None,
        offset: int = 0,
        start_cursor: bytes | str | None = None,
        end_cursor: bytes | str | None = None,
        **query_kwargs: Any,
    ) -> None:
        super().__init__(client, **query_kwargs)
        self.query_string = query_string
        self.limit = limit
        self.offset = offset
        self.start_cursor = start_cursor
        self.end_cursor = end_cursor

    def fetch(
        self,
        limit: int | None = None,
        offset: int | None = None,
        start_cursor: bytes | str | None = None,
        end_cursor: bytes | str | None = None,
        client: Client | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> Iterator:
        """Run the query; arguments left at ``None`` come from the GQL text.

        Args:
            limit: At most this many results (default: the text's ``LIMIT``).
            offset: Skip this many results first (default: the text's ``OFFSET``).
            start_cursor: Resume after this cursor (default: ``OFFSET @cursor``).
            end_cursor: Stop at this cursor (default: ``LIMIT @cursor``).
            eventual: Ancestor queries: read without rolling the group forward.
        """
        skip = 0
        if start_cursor is None:
            start_cursor = self.start_cursor
            if start_cursor is not None:
                # OFFSET @cursor + n: Iterator drops the offset when it has a cursor.
                skip = self.offset if offset is None else offset
        iterator_class = _SkippingIterator if skip else Iterator
        iterator = iterator_class(
            self,
            client or self._client,
            limit=self.limit if limit is None else limit,
            offset=self.offset if offset is None else offset,
            start_cursor=start_cursor,
            end_cursor=self.end_cursor if end_cursor is None else end_cursor,
            eventual=eventual,
            retry=retry,
            timeout=timeout,
            read_time=read_time,
        )
        if isinstance(iterator, _SkippingIterator):
            iterator._skip = skip
        return iterator

    def __repr__(self) -> str:
        return f"<GqlQuery {self.query_string!r}>"


class _SkippingIterator(Iterator):
    """An iterator that skips ``_skip`` results after its start cursor before the first page.

    ``Iterator`` (like the official client) sends no offset together with a cursor, so the
    skip is done here: read up to ``_skip`` results from the cursor and start from the
    cursor after them (skipped results are read anyway, as with a Datastore offset).
    """

    _skip = 0

    def _next_page(self) -> Page | None:
        skip, self._skip = self._skip, 0
        if skip and self._more_results:
            client = self.client
            transaction = client.current_transaction
            txn_id = None
            if transaction is not None:
                if self._eventual or self._read_time is not None:
                    raise ValueError(
                        "At most one of eventual, transaction, or read_time is allowed."
                    )
                txn_id = transaction._read_id()
            spec = self._query._to_spec()
            cursor = _decode_token(self.next_page_token)
            while skip > 0:
                batch = client._datastore_api.run_query(
                    spec,
                    limit=skip,
                    offset=0,
                    start_cursor=cursor,
                    end_cursor=_decode_token(self._end_cursor),
                    transaction=txn_id,
                    eventual=self._eventual,
                    continuation=self._continuation,
                )
                self._continuation = True
                skip -= len(batch.results)
                cursor = batch.end_cursor
                if batch.more_results != ResultBatch.NOT_FINISHED:
                    break
            self.next_page_token = base64.urlsafe_b64encode(cursor or b"")
            self._offset = 0
        return super()._next_page()


class CountUpToAggregation(CountAggregation):
    """``COUNT_UP_TO(n)``: count at most ``up_to`` results (other aggregations unaffected)."""

    def __init__(self, up_to: int, alias: str | None = None) -> None:
        super().__init__(alias=alias)
        self.up_to = up_to


class GqlAggregationQuery(AggregationQuery):
    """An :class:`~datastore_lite.aggregation.AggregationQuery` made from GQL.

    ``fetch()`` applies the nested query's ``LIMIT`` unless given ``limit``; each
    ``COUNT_UP_TO(n)`` counts at most ``n`` results while the other aggregations in the same
    query see every result, as in Datastore. Results come back in the order written.

    Example:
        >>> from datastore_lite import Client
        >>> client = Client(project="doc", url="sqlite://", consistency="strong")
        >>> query = client.gql("SELECT COUNT(*) AS total FROM Photo")
        >>> [[(r.alias, r.value) for r in batch] for batch in query.fetch()]
        [[('total', 0)]]
    """

    def __init__(self, client: Client, query: GqlQuery, *, query_string: str = "") -> None:
        super().__init__(client, query)
        self.query_string = query_string
        self.limit = query.limit

    def fetch(
        self,
        client: Client | None = None,
        limit: int | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> AggregationResultIterator:
        """Run the aggregations (``limit`` default: the GQL ``LIMIT``)."""
        return _GqlAggregationIterator(
            self,
            client or self._client,
            limit=self.limit if limit is None else limit,
            eventual=eventual,
            read_time=read_time,
        )

    def __repr__(self) -> str:
        return f"<GqlAggregationQuery {self.query_string!r}>"


class _GqlAggregationIterator(AggregationResultIterator):
    """Runs one engine aggregation per distinct effective limit (COUNT_UP_TO's ``n``)."""

    def _run(self) -> list[AggregationResult]:
        client = self.client
        transaction = client.current_transaction
        txn_id = None
        if transaction is not None:
            if self._eventual or self._read_time is not None:
                raise ValueError("At most one of eventual, transaction, or read_time is allowed.")
            txn_id = transaction._read_id()
        query = self._aggregation_query
        specs = query._specs()
        if len(specs) > 5:
            raise exceptions.InvalidArgument(
                "An aggregation query may have at most 5 aggregations."
            )
        groups: dict[int | None, list[tuple[str, str, str | None]]] = {}
        for spec, aggregation in zip(specs, query._aggregations):
            limits = [self._limit, getattr(aggregation, "up_to", None)]
            known = [n for n in limits if n is not None]
            groups.setdefault(min(known) if known else None, []).append(spec)
        nested = query._nested_query._to_spec()
        values: dict[str, Any] = {}
        for limit, group in groups.items():
            if limit == 0:  # nothing to read: the aggregations of an empty result
                values.update({alias: 0 if k != "avg" else None for k, alias, _ in group})
                continue
            values.update(
                client._datastore_api.run_aggregation_query(
                    nested, group, limit=limit, transaction=txn_id, eventual=self._eventual
                )
            )
        return [AggregationResult(alias, values[alias]) for _, alias, _ in specs]
