"""Aggregation queries (COUNT, SUM, AVG), with the API of ``google.cloud.datastore.aggregation``.

Deliberate difference (docs/compatibility.md): values come back as proper Python types -
a count of nothing is ``0`` (int), not the official client's ``0.0`` quirk.
"""

from __future__ import annotations

from collections.abc import Iterator as _Iter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .query import Page

if TYPE_CHECKING:
    from .client import Client
    from .query import Query
    from .query_profile import ExplainOptions

__all__ = [
    "AggregationQuery",
    "AggregationResult",
    "AggregationResultIterator",
    "AvgAggregation",
    "BaseAggregation",
    "CountAggregation",
    "SumAggregation",
]


class BaseAggregation:
    """Base class of the aggregations."""

    kind = ""
    property_ref: str | None = None

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias


class CountAggregation(BaseAggregation):
    """Count the results (up to the fetch ``limit`` when one is given)."""

    kind = "count"


class SumAggregation(BaseAggregation):
    """Sum a numeric property (non-numeric values, null included, are skipped)."""

    kind = "sum"

    def __init__(self, property_ref: str, alias: str | None = None) -> None:
        self.property_ref = property_ref
        super().__init__(alias=alias)


class AvgAggregation(BaseAggregation):
    """Average a numeric property (``None`` when no value is numeric)."""

    kind = "avg"

    def __init__(self, property_ref: str, alias: str | None = None) -> None:
        self.property_ref = property_ref
        super().__init__(alias=alias)


class AggregationResult:
    """One aggregated value and its alias."""

    def __init__(self, alias: str, value: Any) -> None:
        self.alias = alias
        self.value = value

    def __repr__(self) -> str:
        return f"<Aggregation alias={self.alias}, value={self.value}>"


class AggregationQuery:
    """Aggregations over a query.

    Example:
        >>> from datastore_lite import Client, Entity
        >>> client = Client(project="doc", url="sqlite://", consistency="strong")
        >>> client.put_multi([Entity(client.key("Photo", i)) for i in range(1, 4)])
        >>> agg = client.aggregation_query(client.query(kind="Photo")).count(alias="n")
        >>> [[(r.alias, r.value) for r in batch] for batch in agg.fetch()]
        [[('n', 3)]]
    """

    def __init__(
        self, client: Client, query: Query, explain_options: ExplainOptions | None = None
    ) -> None:
        self._client = client
        self._nested_query = query
        self._aggregations: list[BaseAggregation] = []
        self._explain_options = explain_options or query._explain_options

    @property
    def project(self) -> str:
        return self._nested_query._project or self._client.project

    @property
    def namespace(self) -> str | None:
        return self._nested_query._namespace or self._client.namespace

    def count(self, alias: str | None = None) -> AggregationQuery:
        self._aggregations.append(CountAggregation(alias=alias))
        return self

    def sum(self, property_ref: str, alias: str | None = None) -> AggregationQuery:
        self._aggregations.append(SumAggregation(property_ref, alias=alias))
        return self

    def avg(self, property_ref: str, alias: str | None = None) -> AggregationQuery:
        self._aggregations.append(AvgAggregation(property_ref, alias=alias))
        return self

    def add_aggregation(self, aggregation: BaseAggregation) -> None:
        self._aggregations.append(aggregation)

    def add_aggregations(self, aggregations: Sequence[BaseAggregation]) -> None:
        self._aggregations.extend(aggregations)

    def _specs(self) -> list[tuple[str, str, str | None]]:
        """(kind, alias, property) per aggregation; SEMANTICS.md §4.7 default aliases."""
        out = []
        number = 0
        used = {a.alias for a in self._aggregations if a.alias}
        for aggregation in self._aggregations:
            alias = aggregation.alias
            if not alias:
                number += 1
                alias = f"property_{number}"
                while alias in used:
                    number += 1
                    alias = f"property_{number}"
            out.append((aggregation.kind, alias, aggregation.property_ref))
        aliases = [a for _, a, _ in out]
        if len(set(aliases)) != len(aliases):
            from . import exceptions

            raise exceptions.InvalidArgument("Aggregation aliases must be unique.")
        return out

    def fetch(
        self,
        client: Client | None = None,
        limit: int | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> AggregationResultIterator:
        """Run the aggregations; iterate for one list of :class:`AggregationResult`."""
        return AggregationResultIterator(
            self, client or self._client, limit=limit, eventual=eventual, read_time=read_time
        )


class AggregationResultIterator:
    """Yields one list of :class:`AggregationResult` (one batch)."""

    def __init__(
        self,
        aggregation_query: AggregationQuery,
        client: Client,
        limit: int | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> None:
        self._aggregation_query = aggregation_query
        self.client = client
        self._limit = limit
        self._eventual = eventual
        self._read_time = read_time
        self._started = False
        self._done = False
        self.num_results = 0
        self.page_number = 0
        self.next_page_token = None
        self._active: _Iter[Any] | None = None

    @property
    def pages(self) -> _Iter[Page]:
        if self._started:
            raise ValueError("Iterator has already started", self)
        self._started = True
        return self._page_iter()

    def __iter__(self) -> _Iter[list[AggregationResult]]:
        if self._started:
            raise ValueError("Iterator has already started", self)
        self._started = True
        return self._items()

    def __next__(self) -> list[AggregationResult]:
        if self._active is None:
            self._active = iter(self)
        return next(self._active)

    def _items(self) -> _Iter[list[AggregationResult]]:
        for page in self._page_iter():
            for item in page:
                self.num_results += 1
                yield item

    def _page_iter(self) -> _Iter[Page]:
        if self._done:
            return
        self._done = True
        self.page_number += 1
        yield Page(self, [self._run()])  # type: ignore[arg-type]

    def _run(self) -> list[AggregationResult]:
        client = self.client
        transaction = client.current_transaction
        txn_id = None
        if transaction is not None:
            if self._eventual or self._read_time is not None:
                raise ValueError("At most one of eventual, transaction, or read_time is allowed.")
            txn_id = transaction._read_id()
        query = self._aggregation_query
        limit = self._limit if self._limit is not None and self._limit > 0 else None
        values = client._datastore_api.run_aggregation_query(
            query._nested_query._to_spec(),
            query._specs(),
            limit=limit,
            transaction=txn_id,
            eventual=self._eventual,
        )
        return [AggregationResult(alias, value) for alias, value in values.items()]
