"""GQL: Datastore's SQL-like query language (SEMANTICS.md §4.8), for ``Client.gql()``.

A hand-written tokenizer and recursive-descent parser turn the text into a small syntax
tree (:func:`parse`); :func:`build` binds its ``@name`` / ``@1`` sites and returns a
:class:`GqlQuery` (a :class:`~datastore_lite.query.Query` whose ``fetch()`` applies the
text's LIMIT, OFFSET and cursors) or a :class:`GqlAggregationQuery`::

    SELECT ( * | __key__ | prop, ... | DISTINCT prop, ... | DISTINCT ON (prop, ...) * |
             DISTINCT ON (prop, ...) prop, ... )
      [FROM kind] [WHERE condition] [ORDER BY prop [ASC|DESC], ...]
      [LIMIT (pos | FIRST(pos, pos))] [OFFSET pos [+ pos]]
    SELECT agg [AS alias], ... [FROM kind] [WHERE ...] ...     agg: COUNT(*) | COUNT_UP_TO(n) |
    AGGREGATE agg [AS alias], ... OVER ( SELECT ... )               SUM(prop) | AVG(prop)

Lexical rules follow Google's Cloud Datastore emulator (probed, gcloud 528): keywords are
case-insensitive and reserved (backquote a property called `order`), names are
case-sensitive, ``'…'`` / ``"…"`` strings take doubled quotes and the escapes
``\\\\ \\' \\" \\` \\n \\t \\r \\b \\0``, numbers carry their sign (``-1``), ``BLOB`` takes
URL-safe base64 without padding and ``DATETIME`` RFC 3339 with a ``Z`` for UTC. Every error is
an :class:`~datastore_lite.exceptions.InvalidArgument`; errors in the text are a
:class:`GqlSyntaxError` that names the line, the column, what was expected and what was found.
"""

from __future__ import annotations

from ._build import build
from ._lexer import GqlSyntaxError
from ._parser import parse
from ._queries import CountUpToAggregation, GqlAggregationQuery, GqlQuery
from ._syntax import (
    Aggregation,
    ArrayLiteral,
    Binding,
    Compound,
    Condition,
    GqlAggregate,
    GqlSelect,
    KeyLiteral,
    Literal,
)

__all__ = [
    "Aggregation",
    "ArrayLiteral",
    "Binding",
    "Compound",
    "Condition",
    "CountUpToAggregation",
    "GqlAggregate",
    "GqlAggregationQuery",
    "GqlQuery",
    "GqlSelect",
    "GqlSyntaxError",
    "KeyLiteral",
    "Literal",
    "build",
    "parse",
]
