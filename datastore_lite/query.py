"""Queries, with the API of ``google.cloud.datastore.query``.

``Query`` builds a query; ``fetch()`` returns an :class:`Iterator` that pages through the
results in bounded batches, exactly as the official client pages through RunQuery
responses: ``.pages``, ``next_page_token`` (a URL-safe base64 cursor), ``num_results``.
The query is converted to an engine spec and run by ``client._datastore_api.run_query``.
"""

from __future__ import annotations

import abc
import base64
import binascii
import warnings
from collections.abc import Callable, Sequence
from collections.abc import Iterator as _Iter
from typing import TYPE_CHECKING, Any

from . import exceptions
from ._convert import body_to_entity, key_to_ref, ref_to_key, to_value, value_to_public
from ._queryspec import CompositeSpec, FilterSpec, QuerySpec, ResultBatch
from .entity import Entity
from .key import Key

if TYPE_CHECKING:
    from .client import Client
    from .query_profile import ExplainOptions

__all__ = ["And", "BaseCompositeFilter", "BaseFilter", "Iterator", "Or", "PropertyFilter", "Query"]

KEY_PROPERTY_NAME = "__key__"
_OPERATORS = ("<=", ">=", "<", ">", "=", "!=", "IN", "NOT_IN")


def _check_operator(operator: str) -> None:
    if operator not in _OPERATORS:
        raise ValueError(
            f'Invalid expression: "{operator}"',
            "Please use one of: =, <, <=, >, >=, !=, IN, NOT_IN.",
        )


class BaseFilter(abc.ABC):
    """Base class for filters."""

    @abc.abstractmethod
    def _to_spec(self) -> FilterSpec | CompositeSpec:
        """The engine form of the filter."""


class PropertyFilter(BaseFilter):
    """``property_name operator value``; operators ``= < <= > >= != IN NOT_IN``.

    Example:
        >>> PropertyFilter("likes", ">", 10)
        <likes > '10'>
    """

    def __init__(self, property_name: str, operator: str, value: Any) -> None:
        if property_name == KEY_PROPERTY_NAME and not _is_key_value(value, operator):
            raise ValueError(f'Invalid key: "{value}"')
        _check_operator(operator)
        self.property_name = property_name
        self.operator = operator
        self.value = value

    def _to_spec(self) -> FilterSpec:
        return FilterSpec(self.property_name, self.operator, _filter_value(self.value))

    def __repr__(self) -> str:
        return f"<{self.property_name} {self.operator} '{self.value}'>"


def _is_key_value(value: Any, operator: str) -> bool:
    if operator in ("IN", "NOT_IN") and isinstance(value, (list, tuple)):
        return all(isinstance(v, Key) for v in value)
    return isinstance(value, Key)


def _filter_value(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    return to_value(value)


class BaseCompositeFilter(BaseFilter):
    """A composite (AND / OR) of filters."""

    operation = "OPERATOR_UNSPECIFIED"

    def __init__(self, operation: str = "OPERATOR_UNSPECIFIED", filters: Any = None) -> None:
        self.operation = operation
        self.filters: list[Any] = [] if filters is None else filters

    def __repr__(self) -> str:
        text = f"op: {self.operation}\nFilters:"
        for item in self.filters:
            text += f"\n\t{item}"
        return text

    def _to_spec(self) -> CompositeSpec:
        parts: list[FilterSpec | CompositeSpec] = []
        for item in self.filters:
            if isinstance(item, BaseFilter):
                parts.append(item._to_spec())
            else:
                name, operator, value = item
                parts.append(PropertyFilter(name, operator, value)._to_spec())
        return CompositeSpec("OR" if self.operation == "OR" else "AND", tuple(parts))


class Or(BaseCompositeFilter):
    """Matches entities matching any of ``filters``."""

    def __init__(self, filters: Sequence[Any]) -> None:
        super().__init__(operation="OR", filters=list(filters))


class And(BaseCompositeFilter):
    """Matches entities matching all of ``filters``."""

    def __init__(self, filters: Sequence[Any]) -> None:
        super().__init__(operation="AND", filters=list(filters))


def _ensure_tuple_or_list(arg_name: str, value: Any) -> list[Any]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"Expected {arg_name} to be a tuple or list. Received {value!r}")
    return list(value)


class Query:
    """A query against the store.

    Args:
        client: The client the query runs on.
        kind: The kind to query (None: a kindless query).
        project: The project (default: the client's).
        namespace: The namespace (default: the client's).
        ancestor: Restrict results to this key and its descendants (strongly consistent).
        filters: ``(name, operator, value)`` tuples or filter objects, ANDed.
        projection: Property names to return (values come from the index).
        order: Property names; ``"-name"`` sorts descending.
        distinct_on: Return the first result for each distinct value of these properties.
        explain_options: Accepted for API parity; datastore_lite has no query profiles.

    Example:
        >>> from datastore_lite import Client
        >>> client = Client(project="doc", url="sqlite://", consistency="strong")
        >>> query = client.query(kind="Photo", order=["-likes"])
        >>> list(query.fetch(limit=5))
        []
    """

    OPERATORS = {op: op for op in _OPERATORS}

    def __init__(
        self,
        client: Client,
        kind: str | None = None,
        project: str | None = None,
        namespace: str | None = None,
        ancestor: Key | None = None,
        filters: Sequence[Any] = (),
        projection: Sequence[str] = (),
        order: Sequence[str] = (),
        distinct_on: Sequence[str] = (),
        explain_options: ExplainOptions | None = None,
    ) -> None:
        self._client = client
        self._kind = kind
        self._project = project or getattr(client, "project", None)
        self._namespace = namespace or getattr(client, "namespace", None)
        self._explain_options = explain_options
        self._ancestor = ancestor
        self._filters: list[Any] = []
        for item in filters:
            if isinstance(item, BaseFilter):
                self.add_filter(filter=item)
            else:
                name, operator, value = item
                self._add_positional(name, operator, value, warn=True)
        self._projection = _ensure_tuple_or_list("projection", projection)
        self._order = _ensure_tuple_or_list("order", order)
        self._distinct_on = _ensure_tuple_or_list("distinct_on", distinct_on)

    # -- properties (official semantics and error texts) ----------------------------------

    @property
    def project(self) -> str:
        return self._project or self._client.project

    @property
    def namespace(self) -> str | None:
        return self._namespace or self._client.namespace

    @namespace.setter
    def namespace(self, value: str) -> None:
        if not isinstance(value, str):
            raise ValueError("Namespace must be a string")
        self._namespace = value

    @property
    def kind(self) -> str | None:
        return self._kind

    @kind.setter
    def kind(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Kind must be a string")
        self._kind = value

    @property
    def ancestor(self) -> Key | None:
        return self._ancestor

    @ancestor.setter
    def ancestor(self, value: Key) -> None:
        if not isinstance(value, Key):
            raise TypeError("Ancestor must be a Key")
        self._ancestor = value

    @ancestor.deleter
    def ancestor(self) -> None:
        self._ancestor = None

    @property
    def filters(self) -> list[Any]:
        """A copy of the filters: ``(name, op, value)`` tuples and filter objects."""
        return self._filters[:]

    def add_filter(
        self,
        property_name: Any = None,
        operator: str | None = None,
        value: Any = None,
        *,
        filter: BaseFilter | None = None,  # noqa: A002 - the official keyword
    ) -> Query:
        """Add a filter: ``add_filter(filter=PropertyFilter("x", ">", 1))``.

        The legacy positional form ``add_filter("x", ">", 1)`` still works and emits the
        official ``UserWarning``.
        """
        if isinstance(property_name, PropertyFilter):
            raise ValueError("PropertyFilter object must be passed using keyword argument 'filter'")
        if isinstance(property_name, BaseCompositeFilter):
            raise ValueError(
                "'Or' and 'And' objects must be passed using keyword argument 'filter'"
            )
        if property_name is not None and operator is not None:
            if filter is not None:
                raise ValueError(
                    "Can't pass in both the positional arguments and 'filter' at the same time"
                )
            self._add_positional(property_name, operator, value, warn=True)
        if isinstance(filter, BaseFilter):
            self._filters.append(filter)
        return self

    def _add_positional(self, name: str, operator: str, value: Any, warn: bool) -> None:
        if name == KEY_PROPERTY_NAME and not _is_key_value(value, operator):
            raise ValueError(f'Invalid key: "{value}"')
        _check_operator(operator)
        if warn:
            warnings.warn(
                "Detected filter using positional arguments. Prefer using the 'filter' "
                "keyword argument instead.",
                UserWarning,
                stacklevel=3,
            )
        self._filters.append((name, operator, value))

    @property
    def projection(self) -> list[str]:
        return self._projection[:]

    @projection.setter
    def projection(self, projection: str | Sequence[str]) -> None:
        if isinstance(projection, str):
            projection = [projection]
        self._projection[:] = projection

    def keys_only(self) -> None:
        """Return keys only (projection ``["__key__"]``)."""
        self._projection[:] = [KEY_PROPERTY_NAME]

    def key_filter(self, key: Key, operator: str = "=") -> None:
        """Filter on the entity key."""
        self.add_filter(KEY_PROPERTY_NAME, operator, key)

    @property
    def order(self) -> list[str]:
        return self._order[:]

    @order.setter
    def order(self, value: str | Sequence[str]) -> None:
        if isinstance(value, str):
            value = [value]
        self._order[:] = value

    @property
    def distinct_on(self) -> list[str]:
        return self._distinct_on[:]

    @distinct_on.setter
    def distinct_on(self, value: str | Sequence[str]) -> None:
        if isinstance(value, str):
            value = [value]
        self._distinct_on[:] = value

    # -- execution ---------------------------------------------------------------------------

    def fetch(
        self,
        limit: int | None = None,
        offset: int = 0,
        start_cursor: bytes | str | None = None,
        end_cursor: bytes | str | None = None,
        client: Client | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> Iterator:
        """Run the query; an iterator over the matching entities.

        Args:
            limit: At most this many results.
            offset: Skip this many results first (they are still read, as in Datastore).
            start_cursor: Resume after this cursor (``iterator.next_page_token``).
            end_cursor: Stop at this cursor.
            eventual: Ancestor queries: read without rolling the group forward.
        """
        return Iterator(
            self,
            client or self._client,
            limit=limit,
            offset=offset,
            start_cursor=start_cursor,
            end_cursor=end_cursor,
            eventual=eventual,
            retry=retry,
            timeout=timeout,
            read_time=read_time,
        )

    def _to_spec(self) -> QuerySpec:
        """The engine form of the query (without limit, offset and cursors)."""
        filt: CompositeSpec | None = None
        if self._filters:
            parts: list[FilterSpec | CompositeSpec] = []
            for item in self._filters:
                if isinstance(item, BaseFilter):
                    parts.append(item._to_spec())
                else:
                    name, operator, value = item
                    parts.append(FilterSpec(name, operator, _filter_value(value)))
            filt = CompositeSpec("AND", tuple(parts))
        client = self._client
        ancestor = self._ancestor
        if ancestor is None:
            ancestor_ref = None
        elif type(ancestor) is Key:
            ancestor_ref = key_to_ref(ancestor)
        else:
            ancestor_ref = to_value(ancestor)
        return QuerySpec(
            self._project or client.project,
            client._database or "",
            self._namespace or client.namespace or "",
            self._kind,
            ancestor_ref,
            filt,
            tuple(self._projection),
            tuple((o[1:], True) if o[:1] == "-" else (o, False) for o in self._order),
            tuple(self._distinct_on),
        )


class Page:
    """One batch of results (``google.api_core.page_iterator.Page``)."""

    def __init__(self, parent: Iterator, items: Sequence[Any]) -> None:
        self._parent = parent
        self._items = iter(items)
        self.num_items = len(items)
        self.remaining = self.num_items

    @property
    def raw_page(self) -> None:
        return None

    def __iter__(self) -> _Iter[Any]:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        self.remaining -= 1
        return item


def _decode_token(token: bytes | str | None) -> bytes | None:
    if token is None:
        return None
    if isinstance(token, str):
        token = token.encode("ascii", "replace")
    try:
        return base64.urlsafe_b64decode(token + b"=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise exceptions.InvalidArgument(
            "Invalid cursor: not a datastore_lite cursor (bad base64)."
        ) from None


class Iterator:
    """The results of ``Query.fetch()``: iterate for entities, or use ``.pages``.

    ``next_page_token`` is the cursor after the last batch (``None`` when no results are
    left); pass it as ``fetch(start_cursor=...)`` to continue later.
    """

    def __init__(
        self,
        query: Query,
        client: Client,
        limit: int | None = None,
        offset: int | None = None,
        start_cursor: bytes | str | None = None,
        end_cursor: bytes | str | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer, not {limit!r}")
        if offset is not None and (not isinstance(offset, int) or offset < 0):
            raise ValueError(f"offset must be a non-negative integer, not {offset!r}")
        self.client = client
        self._query = query
        self.max_results = limit
        self.num_results = 0
        self.page_number = 0
        self.next_page_token: bytes | str | None = start_cursor
        self._offset = offset
        self._end_cursor = end_cursor
        self._eventual = eventual
        self._read_time = read_time
        self._started = False
        self._continuation = False  # set after the first batch (DESIGN.md §7, one prefix)
        self._more_results = True
        self._skipped_results = 0
        self._active: _Iter[Any] | None = None
        self._spec: QuerySpec | None = None

    @property
    def explain_metrics(self) -> Any:
        from .query_profile import QueryExplainError

        raise QueryExplainError("explain_options not set on query.")

    @property
    def pages(self) -> _Iter[Page]:
        """The result batches, one per run of the query."""
        if self._started:
            raise ValueError("Iterator has already started", self)
        self._started = True
        return self._page_iter(increment=True)

    def __iter__(self) -> _Iter[Any]:
        if self._started:
            raise ValueError("Iterator has already started", self)
        self._started = True
        return self._items_iter()

    def __next__(self) -> Any:
        if self._active is None:
            self._active = iter(self)
        return next(self._active)

    def _items_iter(self) -> _Iter[Any]:
        for page in self._page_iter(increment=False):
            for item in page:
                self.num_results += 1
                yield item

    def _page_iter(self, increment: bool) -> _Iter[Page]:
        page = self._next_page()
        while page is not None:
            self.page_number += 1
            if increment:
                self.num_results += page.num_items
            yield page
            page = self._next_page()

    def _next_page(self) -> Page | None:
        if not self._more_results:
            return None
        client = self.client
        transaction = client.current_transaction
        txn_id = None
        if transaction is not None:
            if self._eventual or self._read_time is not None:
                raise ValueError("At most one of eventual, transaction, or read_time is allowed.")
            txn_id = transaction._read_id()
        if self._spec is None:
            self._spec = self._query._to_spec()
        start = _decode_token(self.next_page_token)
        limit = None if self.max_results is None else self.max_results - self.num_results
        batch: ResultBatch = client._datastore_api.run_query(
            self._spec,
            limit=limit,
            offset=(self._offset or 0) if start is None else 0,
            start_cursor=start,
            end_cursor=_decode_token(self._end_cursor),
            transaction=txn_id,
            eventual=self._eventual,
            continuation=self._continuation,
        )
        self._continuation = True
        if start is None and self._offset:
            self._offset = max(0, self._offset - batch.skipped_results)
        self._skipped_results = batch.skipped_results
        if batch.more_results == ResultBatch.NO_MORE_RESULTS:
            self.next_page_token = None
        else:
            self.next_page_token = base64.urlsafe_b64encode(batch.end_cursor)
        self._more_results = batch.more_results == ResultBatch.NOT_FINISHED
        project, database, namespace = batch.partition
        database_or_none = database or None
        namespace_or_none = namespace or None
        entities = []
        for result in batch.results:
            raw = result.key
            if type(raw) is bytes:
                key = Key._from_encoded(raw, project, namespace_or_none, database_or_none)
            else:
                key = ref_to_key(raw)  # type: ignore[arg-type]
            body = result.body
            entities.append(
                body_to_entity(key, body) if body is not None else _to_entity(result, key)
            )
        return Page(self, entities)


def _to_entity(result: Any, key: Key) -> Entity:
    if result.body is not None:
        return body_to_entity(key, result.body)
    entity = Entity(key)
    if result.projection:
        dict.update(entity, {k: value_to_public(v) for k, v in result.projection.items()})
    return entity


ItemToValue = Callable[[Iterator, Any], Any]
