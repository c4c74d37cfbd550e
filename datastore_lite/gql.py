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

import base64
import binascii
import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import exceptions
from ._convert import to_value
from ._queryspec import ResultBatch
from .aggregation import (
    AggregationQuery,
    AggregationResult,
    AggregationResultIterator,
    CountAggregation,
)
from .key import Key
from .query import And, BaseFilter, Iterator, Or, Page, PropertyFilter, Query, _decode_token

if TYPE_CHECKING:
    from .client import Client

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

KEY_PROPERTY = "__key__"
# Reserved words (the emulator rejects each of them as an unquoted kind or property name);
# KEY, ARRAY, BLOB, DATETIME, PROJECT, NAMESPACE and FIRST stay usable as names.
# fmt: off
RESERVED = frozenset(
    {
        "AGGREGATE", "AND", "ANCESTOR", "AS", "ASC", "AVG", "BY", "CONTAINS", "COUNT",
        "COUNT_UP_TO", "DESC", "DESCENDANT", "DISTINCT", "FALSE", "FROM", "GROUP", "HAS", "IN",
        "IS", "LIMIT", "NOT", "NULL", "OFFSET", "ON", "OR", "ORDER", "OVER", "SELECT", "SUM",
        "TRUE", "WHERE",
    }
)
# fmt: on
_FUNCTIONS = ("KEY", "ARRAY", "BLOB", "DATETIME")
_CLAUSES = ("FROM", "WHERE", "ORDER BY", "LIMIT", "OFFSET")
# Clause words: finding one where a name belongs means a missing name, not a quoting problem.
_STRUCTURAL = frozenset({"SELECT", "FROM", "WHERE", "ORDER", "LIMIT", "OFFSET", "AND", "OR"})
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "n": "\n", "t": "\t", "r": "\r",
            "b": "\b", "0": "\0"}  # fmt: skip
_DIGITS = frozenset("0123456789")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([Zz]|([+-])(\d\d):(\d\d))"
)
_BLOB = re.compile(r"[A-Za-z0-9_-]*")
_BINDING_NAME = re.compile(r"[A-Za-z_$][A-Za-z_$0-9]*")
_VALUE_EXPECTED = (
    "a value (a string, a number, TRUE, FALSE, NULL, a @binding, KEY(...), ARRAY(...), "
    "BLOB(...) or DATETIME(...))"
)


class GqlSyntaxError(exceptions.InvalidArgument):
    """A GQL text that does not parse; ``line`` and ``column`` are 1-based.

    Example:
        >>> try:
        ...     parse("SELECT * FROM C ORDER BY LIMIT 5")
        ... except GqlSyntaxError as exc:
        ...     print(exc.line, exc.column, exc.description)
        1 26 expected a property name after ORDER BY, found "LIMIT"
    """

    def __init__(self, query_string: str, offset: int, reason: str) -> None:
        self.query_string = query_string
        self.offset = offset
        self.line, self.column, excerpt, caret = _locate(query_string, offset)
        self.description = reason
        super().__init__(
            f"GQL syntax error at line {self.line}, column {self.column}: {reason}\n"
            f"  {excerpt}\n  {caret}"
        )


def _locate(text: str, offset: int) -> tuple[int, int, str, str]:
    """(line, column, the line's text, a caret under the column) for an error at ``offset``."""
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    excerpt = text[start : len(text) if end < 0 else end]
    column = offset - start + 1
    before = excerpt[: column - 1]
    if len(before) > 60:  # keep long one-line queries readable
        cut = len(before) - 50
        excerpt, before = "..." + excerpt[cut:], "..." + before[cut:]
    if len(excerpt) > len(before) + 60:
        excerpt = excerpt[: len(before) + 57] + "..."
    caret = "".join("\t" if ch == "\t" else " " for ch in before) + "^"
    return line, column, excerpt, caret


def _error(text: str, offset: int, reason: str) -> exceptions.InvalidArgument:
    """A non-syntax error about the construct at ``offset`` (bindings, values)."""
    line, column, excerpt, caret = _locate(text, offset)
    return exceptions.InvalidArgument(
        f"GQL error at line {line}, column {column}: {reason}\n  {excerpt}\n  {caret}"
    )


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, qname, int, double, string, named, positional, punct, eof
    text: str  # the source text
    value: Any  # decoded: name, number, string, binding name or position, punctuation
    offset: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        nxt = text[i + 1] if i + 1 < n else ""
        if ch in _DIGITS or (ch in "+-." and (nxt in _DIGITS or (nxt == "." and ch != "."))):
            match = _NUMBER.match(text, i)
            if match is None:  # "+." or "-." not followed by a digit
                raise GqlSyntaxError(text, i, f'unexpected character "{ch}"')
            i = match.end()
            if i < n and (text[i].isalnum() or text[i] in "_$."):
                while i < n and (text[i].isalnum() or text[i] in "_$."):
                    i += 1
                raise GqlSyntaxError(text, start, f'invalid number "{text[start:i]}"')
            literal = match.group()
            if any(c in literal for c in ".eE"):
                tokens.append(_Token("double", literal, float(literal), start))
                continue
            number = int(literal)
            if not _INT64_MIN <= number <= _INT64_MAX:
                raise GqlSyntaxError(
                    text, start, f"integer {literal} does not fit in 64 bits (use a double)"
                )
            tokens.append(_Token("int", literal, number, start))
        elif ch.isalpha() or ch in "_$":
            while i < n and (text[i].isalnum() or text[i] in "_$"):
                i += 1
            tokens.append(_Token("name", text[start:i], text[start:i], start))
        elif ch in "'\"`":
            value, i = _quoted(text, i)
            if ch == "`":
                if not value:
                    raise GqlSyntaxError(text, start, "a backquoted name must not be empty")
                tokens.append(_Token("qname", text[start:i], value, start))
            else:
                tokens.append(_Token("string", text[start:i], value, start))
        elif ch == "@":
            i += 1
            while i < n and (text[i].isalnum() or text[i] in "_$"):
                i += 1
            site = text[start + 1 : i]
            if site and all(c in _DIGITS for c in site):
                if int(site) == 0:
                    raise GqlSyntaxError(
                        text, start, f"invalid binding site @{site}: positions start at @1"
                    )
                tokens.append(_Token("positional", text[start:i], int(site), start))
            elif _BINDING_NAME.fullmatch(site):
                if site.startswith("__") and site.endswith("__"):
                    raise GqlSyntaxError(
                        text, start, f'the GQL binding name "{site}" is reserved (__...__)'
                    )
                tokens.append(_Token("named", text[start:i], site, start))
            else:
                raise GqlSyntaxError(
                    text, start, "expected a binding name or a position (@name, @1) after @"
                )
        elif text.startswith(("<=", ">=", "!="), i):
            i += 2
            tokens.append(_Token("punct", text[start:i], text[start:i], start))
        elif ch in "(),*=<>+.":
            i += 1
            tokens.append(_Token("punct", ch, ch, start))
        else:
            raise GqlSyntaxError(text, i, f'unexpected character "{ch}"')
    tokens.append(_Token("eof", "", None, n))
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Decode the string or backquoted name opening at ``start``; (value, end offset)."""
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            if i + 1 < n and text[i + 1] == quote:  # 'it''s'
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        if ch == "\\":
            escaped = text[i + 1] if i + 1 < n else ""
            if escaped not in _ESCAPES:
                raise GqlSyntaxError(
                    text,
                    i,
                    f'invalid escape sequence "\\{escaped}" (valid: \\\\ \\\' \\" \\` '
                    "\\n \\t \\r \\b \\0)",
                )
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        out.append(ch)
        i += 1
    what = "backquoted name" if quote == "`" else "string"
    raise GqlSyntaxError(text, start, f"unterminated {what} (missing closing {quote})")


# -- syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A literal value (string, int, float, bool, None, bytes from BLOB, datetime)."""

    value: Any
    offset: int


@dataclass(frozen=True)
class Binding:
    """A binding site: ``@name`` (``name`` set) or ``@1`` (``position`` set)."""

    name: str | None
    position: int | None
    offset: int

    def __str__(self) -> str:
        return f"@{self.name if self.name is not None else self.position}"


@dataclass(frozen=True)
class KeyLiteral:
    """``KEY([PROJECT('p'),] [NAMESPACE('n'),] Kind, id_or_name, ...)``."""

    path: tuple[str | int, ...]
    project: str | None
    namespace: str | None
    offset: int


@dataclass(frozen=True)
class ArrayLiteral:
    """``ARRAY(v, ...)``."""

    items: tuple[Literal | Binding | KeyLiteral, ...]
    offset: int


Value = Literal | Binding | KeyLiteral | ArrayLiteral
Position = Literal | Binding  # a LIMIT / OFFSET operand: an integer or a binding


@dataclass(frozen=True)
class Condition:
    """``prop op value``; ``op`` is one of ``= < <= > >= != IN NOT_IN CONTAINS HAS_ANCESTOR``.

    Conditions written value-first are stored property-first (``7 < n`` is ``n > 7``;
    ``KEY(...) HAS DESCENDANT __key__`` is ``__key__ HAS_ANCESTOR KEY(...)``) and
    ``n IS NULL`` is ``n = NULL``.
    """

    prop: str
    op: str
    value: Value
    offset: int


@dataclass(frozen=True)
class Compound:
    """``AND`` / ``OR`` of conditions."""

    op: str
    parts: tuple[Condition | Compound, ...]


@dataclass(frozen=True)
class GqlSelect:
    """A parsed ``SELECT`` (see the module docstring)."""

    kind: str | None = None
    projection: tuple[str, ...] = ()
    distinct_on: tuple[str, ...] = ()
    where: Condition | Compound | None = None
    order: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    limit: tuple[Position, ...] = ()  # LIMIT n / @c: one item; LIMIT FIRST(a, b): two
    offset: tuple[Position, ...] = ()  # OFFSET a: one item; OFFSET @cursor + n: two
    offset_at: int = 0


@dataclass(frozen=True)
class Aggregation:
    """``COUNT(*)``, ``COUNT_UP_TO(n)``, ``SUM(prop)`` or ``AVG(prop)``, with its alias."""

    function: str
    prop: str | None = None
    up_to: Position | None = None
    alias: str | None = None


@dataclass(frozen=True)
class GqlAggregate:
    """A parsed aggregation: ``SELECT COUNT(*) ...`` or ``AGGREGATE ... OVER (SELECT ...)``."""

    aggregations: tuple[Aggregation, ...]
    query: GqlSelect


@dataclass
class _Parsed:
    """A statement and every binding site and literal in it."""

    statement: GqlSelect | GqlAggregate
    bindings: list[Binding] = field(default_factory=list)
    literals: list[int] = field(default_factory=list)  # offsets, for allow_literals=False


# -- parser ---------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; each method parses one production."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.bindings: list[Binding] = []
        self.literals: list[int] = []

    # token helpers

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def is_kw(self, *words: str, token: _Token | None = None) -> bool:
        token = token or self.tok
        return token.kind == "name" and token.text.upper() in words

    def is_punct(self, *marks: str, token: _Token | None = None) -> bool:
        token = token or self.tok
        return token.kind == "punct" and token.text in marks

    def fail(self, expected: str, token: _Token | None = None) -> GqlSyntaxError:
        token = token or self.tok
        if token.kind == "eof":
            found = "the end of the query"
        else:
            shown = token.text if len(token.text) <= 40 else token.text[:37] + "..."
            found = f'"{shown}"'
        hint = ""
        word = token.text.upper()
        if token.kind == "name" and word in RESERVED - _STRUCTURAL and "name" in expected:
            hint = f" ({word} is a keyword; write `{token.text}` for a name)"
        return GqlSyntaxError(self.text, token.offset, f"expected {expected}, found {found}{hint}")

    def keyword(self, word: str, expected: str) -> _Token:
        if not self.is_kw(word):
            raise self.fail(expected)
        return self.advance()

    def punct(self, mark: str, expected: str) -> None:
        if not self.is_punct(mark):
            raise self.fail(expected)
        self.advance()

    def is_name_start(self, token: _Token | None = None) -> bool:
        token = token or self.tok
        return token.kind == "qname" or (
            token.kind == "name" and token.text.upper() not in RESERVED
        )

    def name(self, expected: str) -> str:
        """A kind or property name: ``name``, ```quoted```, dotted ``a.b``."""
        if not self.is_name_start():
            raise self.fail(expected)
        parts = [self.advance().value]
        while self.is_punct(".") and self.is_name_start(self.peek()):
            self.advance()
            parts.append(self.advance().value)
        return ".".join(parts)

    # statements

    def statement(self) -> GqlSelect | GqlAggregate:
        if self.is_kw("AGGREGATE"):
            statement: GqlSelect | GqlAggregate = self.aggregate_over()
            follow = ["the end of the query"]
        elif self.is_kw("SELECT") and self.is_aggregation_start(self.peek()):
            self.advance()
            aggregations = self.aggregation_list()
            select, follow = self.select_clauses(GqlSelect(), [",", "AS"])
            statement = GqlAggregate(aggregations, select)
        else:
            statement, follow = self.select()
        if self.tok.kind != "eof":
            error = self.fail(_one_of(follow + ["the end of the query"]))
            if self.is_kw("FROM", "WHERE", "ORDER", "LIMIT", "OFFSET"):
                error = GqlSyntaxError(
                    self.text,
                    self.tok.offset,
                    f"{error.description} (clauses go in the order FROM, WHERE, ORDER BY, LIMIT, "
                    "OFFSET, each at most once)",
                )
            raise error
        return statement

    def is_aggregation_start(self, token: _Token) -> bool:
        return self.is_kw("COUNT", "COUNT_UP_TO", "SUM", "AVG", token=token)

    def select(self) -> tuple[GqlSelect, list[str]]:
        """``SELECT ...`` up to the first token it cannot use; (select, what could follow)."""
        self.keyword("SELECT", "SELECT or AGGREGATE")
        projection: tuple[str, ...] = ()
        distinct_on: tuple[str, ...] = ()
        follow: list[str] = []
        if self.is_punct("*"):
            self.advance()
        elif self.is_kw("DISTINCT"):
            self.advance()
            if self.is_kw("ON"):
                self.advance()
                self.punct("(", '"(" after DISTINCT ON')
                distinct_on = self.name_list("a property name in DISTINCT ON (...)")
                self.punct(")", '"," or ")" after a DISTINCT ON property')
                if self.is_punct("*"):
                    self.advance()
                else:
                    projection = self.name_list("* or a property name after DISTINCT ON (...)")
                    follow = [","]
            else:
                projection = distinct_on = self.name_list(
                    "a property name or ON after DISTINCT (DISTINCT * is not GQL)"
                )
                follow = [","]
        elif self.is_name_start():
            projection = self.name_list("a property name")
            follow = [","]
        else:
            raise self.fail(
                "*, __key__, a property name, DISTINCT or an aggregation "
                "(COUNT(*), COUNT_UP_TO(n), SUM(p), AVG(p)) after SELECT"
            )
        return self.select_clauses(
            GqlSelect(projection=projection, distinct_on=distinct_on), follow
        )

    def name_list(self, expected: str) -> tuple[str, ...]:
        names = [self.name(expected)]
        while self.is_punct(","):
            self.advance()
            names.append(self.name('a property name after ","'))
        return tuple(names)

    def select_clauses(self, select: GqlSelect, follow: list[str]) -> tuple[GqlSelect, list[str]]:
        """``[FROM] [WHERE] [ORDER BY] [LIMIT] [OFFSET]``, in that order.

        Returns the select and what could have continued it at the token where it stopped:
        the continuations of its last construct, then the clauses that may still come.
        """
        kind = where = None
        order: tuple[tuple[str, bool], ...] = ()
        limit: tuple[Position, ...] = ()
        offset: tuple[Position, ...] = ()
        offset_at = 0
        last = -1  # index in _CLAUSES of the last clause present
        if self.is_kw("FROM"):
            self.advance()
            kind = self.name("a kind name after FROM")
            follow, last = [], 0
        if self.is_kw("WHERE"):
            self.advance()
            where = self.or_condition()
            follow, last = ["AND", "OR"], 1
        if self.is_kw("ORDER"):
            self.advance()
            self.keyword("BY", "BY after ORDER")
            order, follow = self.order_list()
            last = 2
        if self.is_kw("LIMIT"):
            self.advance()
            limit = self.limit()
            follow, last = [], 3
        if self.is_kw("OFFSET"):
            offset_at = self.advance().offset
            offset, follow = self.offset()
            last = 4
        selected = GqlSelect(
            kind=kind,
            projection=select.projection,
            distinct_on=select.distinct_on,
            where=where,
            order=order,
            limit=limit,
            offset=offset,
            offset_at=offset_at,
        )
        return selected, follow + list(_CLAUSES[last + 1 :])

    def order_list(self) -> tuple[tuple[tuple[str, bool], ...], list[str]]:
        items: list[tuple[str, bool]] = []
        while True:
            expected = (
                "a property name after ORDER BY" if not items else 'a property name after ","'
            )
            prop = self.name(expected)
            descending = False
            follow = [",", "ASC", "DESC"]
            if self.is_kw("ASC", "DESC"):
                descending = self.advance().text.upper() == "DESC"
                follow = [","]
            items.append((prop, descending))
            if not self.is_punct(","):
                return tuple(items), follow
            self.advance()

    def limit(self) -> tuple[Position, ...]:
        if self.is_kw("FIRST") and self.is_punct("(", token=self.peek()):
            self.advance()
            self.advance()
            first = self.position("an integer or a @binding in FIRST(...)")
            self.punct(",", '"," in FIRST(a, b)')
            second = self.position("an integer or a @binding in FIRST(...)")
            self.punct(")", '")" to close FIRST(...)')
            return (first, second)
        return (self.position("an integer, a @binding or FIRST(...) after LIMIT"),)

    def offset(self) -> tuple[tuple[Position, ...], list[str]]:
        start = self.position("an integer or a @binding after OFFSET")
        plus_token = self.tok
        if self.is_punct("+"):
            self.advance()
            plus = self.position("an integer or a @binding after +")
        elif plus_token.kind == "int" and plus_token.text.startswith("+"):
            # "@c +2": the lexer read "+2" as a signed number
            self.advance()
            self.literals.append(plus_token.offset)
            plus = Literal(plus_token.value, plus_token.offset)
        else:
            return (start,), (["+"] if isinstance(start, Binding) else [])
        if isinstance(start, Literal):
            raise GqlSyntaxError(
                self.text,
                plus_token.offset,
                "OFFSET <integer> + ... is not GQL: the left of + must be a cursor @binding",
            )
        return (start, plus), []

    def position(self, expected: str) -> Position:
        token = self.tok
        if token.kind == "int":
            self.advance()
            self.literals.append(token.offset)
            return Literal(token.value, token.offset)
        if token.kind in ("named", "positional"):
            return self.binding()
        raise self.fail(expected)

    def binding(self) -> Binding:
        token = self.advance()
        if token.kind == "named":
            site = Binding(token.value, None, token.offset)
        else:
            site = Binding(None, token.value, token.offset)
        self.bindings.append(site)
        return site

    # aggregations

    def aggregate_over(self) -> GqlAggregate:
        self.keyword("AGGREGATE", "AGGREGATE")
        if not self.is_aggregation_start(self.tok):
            raise self.fail("an aggregation (COUNT(*), COUNT_UP_TO(n), SUM(p), AVG(p))")
        aggregations = self.aggregation_list()
        self.keyword("OVER", _one_of([",", "AS", "OVER"]))
        self.punct("(", '"(" after OVER')
        select, follow = self.select()
        if not self.is_punct(")"):
            raise self.fail(_one_of(follow + ['")" to close OVER (...)']))
        self.advance()
        return GqlAggregate(aggregations, select)

    def aggregation_list(self) -> tuple[Aggregation, ...]:
        items = [self.aggregation()]
        while self.is_punct(","):
            self.advance()
            items.append(self.aggregation())
        return tuple(items)

    def aggregation(self) -> Aggregation:
        expected = "an aggregation (COUNT(*), COUNT_UP_TO(n), SUM(p), AVG(p))"
        if not self.is_aggregation_start(self.tok):
            raise self.fail(expected)
        function = self.advance().text.upper()
        self.punct("(", f'"(" after {function}')
        prop: str | None = None
        up_to: Position | None = None
        if function == "COUNT":
            self.punct("*", '"*" in COUNT(*)')
        elif function == "COUNT_UP_TO":
            up_to = self.position("an integer or a @binding in COUNT_UP_TO(...)")
        else:
            prop = self.name(f"a property name in {function}(...)")
        self.punct(")", f'")" to close {function}(...)')
        alias = None
        if self.is_kw("AS"):
            self.advance()
            alias = self.name("an alias name after AS")
        return Aggregation(function, prop, up_to, alias)

    # conditions

    def or_condition(self) -> Condition | Compound:
        parts = [self.and_condition()]
        while self.is_kw("OR"):
            self.advance()
            parts.append(self.and_condition())
        return parts[0] if len(parts) == 1 else Compound("OR", tuple(parts))

    def and_condition(self) -> Condition | Compound:
        parts = [self.primary_condition()]
        while self.is_kw("AND"):
            self.advance()
            parts.append(self.primary_condition())
        return parts[0] if len(parts) == 1 else Compound("AND", tuple(parts))

    def primary_condition(self) -> Condition | Compound:
        if self.is_punct("("):
            self.advance()
            inner = self.or_condition()
            self.punct(")", _one_of(["AND", "OR", '")"']))
            return inner
        return self.condition()

    def condition(self) -> Condition:
        start = self.tok
        if self.is_name_start() and not self.is_punct("(", token=self.peek()):
            prop = self.name("a property name")
            return self.forward_condition(prop, start)
        if self.starts_value():
            value = self.value()
            return self.backward_condition(value, start)
        raise self.fail('a property name, a value or "(" at the start of a condition')

    def forward_condition(self, prop: str, start: _Token) -> Condition:
        """``prop IS NULL`` / ``prop <op> value``."""
        expected = (
            "an operator (=, <, <=, >, >=, !=, IN, NOT IN, CONTAINS, HAS ANCESTOR, IS NULL) "
            f'after "{prop}"'
        )
        token = self.tok
        if self.is_punct("=", "<", "<=", ">", ">=", "!="):
            op = self.advance().text
        elif self.is_kw("IN", "CONTAINS"):
            op = self.advance().text.upper()
        elif self.is_kw("NOT"):
            self.advance()
            self.keyword("IN", "IN after NOT")
            op = "NOT_IN"
        elif self.is_kw("HAS"):
            self.advance()
            if self.is_kw("DESCENDANT"):
                raise self.fail(
                    "ANCESTOR after HAS (with the key on the left write KEY(...) HAS DESCENDANT "
                    "__key__)"
                )
            self.keyword("ANCESTOR", "ANCESTOR after HAS")
            if prop != KEY_PROPERTY:
                raise GqlSyntaxError(
                    self.text, start.offset, f'HAS ANCESTOR applies to __key__, not to "{prop}"'
                )
            op = "HAS_ANCESTOR"
        elif self.is_kw("IS"):
            self.advance()
            null = self.keyword("NULL", "NULL after IS (IS NOT NULL is not GQL)")
            self.literals.append(null.offset)
            return Condition(prop, "=", Literal(None, null.offset), start.offset)
        else:
            raise self.fail(expected, token)
        return Condition(prop, op, self.value(), start.offset)

    def backward_condition(self, value: Value, start: _Token) -> Condition:
        """``value <op> prop``, stored as ``prop <flipped op> value``."""
        flipped = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
        if self.is_punct(*flipped):
            op = flipped[self.advance().text]
        elif self.is_kw("IN"):
            self.advance()
            op = "IN"
        elif self.is_kw("NOT"):
            self.advance()
            self.keyword("IN", "IN after NOT")
            op = "NOT_IN"
        elif self.is_kw("HAS"):
            self.advance()
            if self.is_kw("ANCESTOR"):
                raise self.fail(
                    "DESCENDANT after HAS (with __key__ on the left write __key__ HAS ANCESTOR "
                    "KEY(...))"
                )
            self.keyword("DESCENDANT", "DESCENDANT after HAS")
            op = "HAS_ANCESTOR"
        else:
            raise self.fail(
                "an operator (=, <, <=, >, >=, !=, IN, NOT IN, HAS DESCENDANT) after the value"
            )
        prop_token = self.tok
        prop = self.name("a property name after the operator")
        if op == "HAS_ANCESTOR" and prop != KEY_PROPERTY:
            raise GqlSyntaxError(
                self.text, prop_token.offset, f'HAS DESCENDANT applies to __key__, not to "{prop}"'
            )
        return Condition(prop, op, value, start.offset)

    # values

    def starts_value(self) -> bool:
        token = self.tok
        return (
            token.kind in ("int", "double", "string", "named", "positional")
            or self.is_kw("TRUE", "FALSE", "NULL")
            or (token.kind == "name" and self.is_punct("(", token=self.peek()))
        )

    def value(self, in_array: bool = False) -> Value:
        token = self.tok
        if token.kind in ("int", "double", "string"):
            self.advance()
            self.literals.append(token.offset)
            return Literal(token.value, token.offset)
        if token.kind in ("named", "positional"):
            return self.binding()
        if self.is_kw("TRUE", "FALSE", "NULL"):
            self.advance()
            self.literals.append(token.offset)
            word = token.text.upper()
            return Literal(None if word == "NULL" else word == "TRUE", token.offset)
        if token.kind == "name" and self.is_punct("(", token=self.peek()):
            function = token.text.upper()
            if function not in _FUNCTIONS:
                raise GqlSyntaxError(
                    self.text,
                    token.offset,
                    f'unknown function "{token.text}" (GQL has KEY, ARRAY, BLOB and DATETIME)',
                )
            self.advance()
            self.advance()
            self.literals.append(token.offset)
            if function == "KEY":
                return self.key_body(token.offset)
            if function == "ARRAY":
                if in_array:
                    raise GqlSyntaxError(
                        self.text, token.offset, "an ARRAY(...) cannot contain another ARRAY"
                    )
                return self.array_body(token.offset)
            text_token = self.tok
            if text_token.kind != "string":
                raise self.fail(f"a quoted string in {function}(...)")
            self.advance()
            self.punct(")", f'")" to close {function}(...)')
            if function == "BLOB":
                return Literal(self.blob(text_token), token.offset)
            return Literal(self.datetime(text_token), token.offset)
        raise self.fail(_VALUE_EXPECTED)

    def array_body(self, offset: int) -> ArrayLiteral:
        items: list[Literal | Binding | KeyLiteral] = []
        if not self.is_punct(")"):
            while True:
                item = self.value(in_array=True)
                assert not isinstance(item, ArrayLiteral)
                items.append(item)
                if not self.is_punct(","):
                    break
                self.advance()
        self.punct(")", '"," or ")" in ARRAY(...)')
        return ArrayLiteral(tuple(items), offset)

    def key_body(self, offset: int) -> KeyLiteral:
        project: str | None = None
        namespace: str | None = None
        while self.is_kw("PROJECT", "NAMESPACE") and self.is_punct("(", token=self.peek()):
            which = self.advance()
            self.advance()
            text_token = self.tok
            if text_token.kind != "string":
                raise self.fail(f"a quoted string in {which.text.upper()}(...)")
            self.advance()
            self.punct(")", f'")" to close {which.text.upper()}(...)')
            if which.text.upper() == "PROJECT":
                if project is not None:
                    raise GqlSyntaxError(self.text, which.offset, "a KEY has at most one PROJECT")
                project = text_token.value
            else:
                if namespace is not None:
                    raise GqlSyntaxError(self.text, which.offset, "a KEY has at most one NAMESPACE")
                namespace = text_token.value
            self.punct(",", '"," after ' + which.text.upper() + "(...)")
        path: list[str | int] = []
        while True:
            path.append(self.name("a kind name in KEY(...)"))
            self.punct(",", '"," after the kind (KEY needs a complete path: Kind, id_or_name)')
            id_token = self.tok
            if id_token.kind == "int":
                if id_token.value == 0:
                    raise GqlSyntaxError(self.text, id_token.offset, "a key id must not be zero")
            elif id_token.kind == "string":
                if not id_token.value:
                    raise GqlSyntaxError(
                        self.text, id_token.offset, "a key name must not be the empty string"
                    )
            else:
                raise self.fail("an integer id or a quoted name in KEY(...)")
            self.advance()
            path.append(id_token.value)
            if not self.is_punct(","):
                break
            self.advance()
        self.punct(")", '"," or ")" in KEY(...)')
        return KeyLiteral(tuple(path), project, namespace, offset)

    def blob(self, token: _Token) -> bytes:
        text = token.value
        # emulator: URL-safe alphabet, no "=" padding ('-_8' ok; '-_8=', '+/8' rejected)
        if _BLOB.fullmatch(text) and len(text) % 4 != 1:
            try:
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):  # pragma: no cover - the regex rules it out
                pass
        raise GqlSyntaxError(
            self.text,
            token.offset,
            f'invalid BLOB text "{text}" (expected URL-safe base64 without "=" padding)',
        )

    def datetime(self, token: _Token) -> _dt.datetime:
        text = token.value
        match = _DATETIME.fullmatch(text)
        if match is None:
            reason = "expected YYYY-MM-DDThh:mm:ss[.ffffff](Z|+hh:mm|-hh:mm)"
        elif match.group(9) is not None and match.group(10) == match.group(11) == "00":
            reason = "a zero offset must be written Z"
        else:
            year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
            micros = int((match.group(7) or "").ljust(6, "0"))
            offset = _dt.timedelta(0)
            if match.group(9) is not None:
                sign = -1 if match.group(9) == "-" else 1
                offset = sign * _dt.timedelta(
                    hours=int(match.group(10)), minutes=int(match.group(11))
                )
            try:
                value = _dt.datetime(
                    year, month, day, hour, minute, second, micros, _dt.timezone(offset)
                )
                return value.astimezone(_dt.UTC)
            except (ValueError, OverflowError) as exc:
                reason = str(exc)
        raise GqlSyntaxError(self.text, token.offset, f'invalid DATETIME text "{text}": {reason}')


def _one_of(items: list[str]) -> str:
    quoted = [f'"{i}"' if i in (",", "+", "(", ")") else i for i in _dedupe(items)]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse(query_string: str) -> GqlSelect | GqlAggregate:
    """Parse GQL text into its syntax tree (no bindings are resolved).

    Args:
        query_string: The GQL text.

    Returns:
        A :class:`GqlSelect`, or a :class:`GqlAggregate` for the aggregation forms.

    Raises:
        GqlSyntaxError: The text is not GQL; the message names the line, the column, what was
            expected and what was found, with a caret under the spot.

    Example:
        >>> parse("SELECT * FROM Photo WHERE likes > 10 ORDER BY likes DESC").order
        (('likes', True),)
    """
    return _parse(query_string).statement


def _parse(query_string: str) -> _Parsed:
    if not isinstance(query_string, str):
        raise TypeError(f"query_string must be a str, not {type(query_string).__name__}")
    parser = _Parser(query_string)
    statement = parser.statement()
    return _Parsed(statement, parser.bindings, parser.literals)


# -- binding and building -------------------------------------------------------------------


class _Binder:
    """Resolves binding sites and literal nodes to Python values, tracking what was used."""

    def __init__(
        self,
        client: Client,
        text: str,
        positional: Sequence[Any],
        named: Mapping[str, Any],
        allow_literals: bool,
    ) -> None:
        self.client = client
        self.text = text
        self.positional = positional
        self.named = named
        self.allow_literals = allow_literals
        for name in named:
            if not _BINDING_NAME.fullmatch(name):
                raise exceptions.InvalidArgument(
                    f'GQL binding name "{name}" is not a valid name ([A-Za-z_$][A-Za-z_$0-9]*)'
                )
            if name.startswith("__") and name.endswith("__"):
                raise exceptions.InvalidArgument(f'GQL binding name "{name}" is reserved (__...__)')

    def check_sites(self, parsed: _Parsed) -> None:
        """Every site bound, every binding used, no literal when literals are disallowed."""
        if not self.allow_literals and parsed.literals:
            at = min(parsed.literals)
            raise _error(self.text, at, "literals are not allowed here (allow_literals=False)")
        used_names = {b.name for b in parsed.bindings if b.name is not None}
        used_positions = {b.position for b in parsed.bindings if b.position is not None}
        for site in parsed.bindings:
            if site.name is not None and site.name not in self.named:
                given = ", ".join(sorted(self.named)) or "none"
                raise _error(
                    self.text, site.offset, f"no value bound to @{site.name} (named: {given})"
                )
            if site.position is not None and site.position > len(self.positional):
                raise _error(
                    self.text,
                    site.offset,
                    f"no value bound to @{site.position} ({len(self.positional)} positional "
                    "value(s) given)",
                )
        for position in range(1, len(self.positional) + 1):
            if position not in used_positions:
                raise exceptions.InvalidArgument(
                    f"GQL positional binding @{position} is not used by the query"
                )
        for name in self.named:
            if name not in used_names:
                raise exceptions.InvalidArgument(
                    f'GQL named binding "{name}" is not used by the query (no @{name} in it)'
                )

    def bound(self, site: Binding) -> Any:
        if site.name is not None:
            return self.named[site.name]
        assert site.position is not None
        return self.positional[site.position - 1]

    def value(self, node: Value) -> Any:
        """The Python value of a value node (bindings checked as Datastore values)."""
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, KeyLiteral):
            client = self.client
            namespace = client.namespace if node.namespace is None else (node.namespace or None)
            return Key(
                *node.path,
                project=node.project or client.project,
                namespace=namespace,
                database=client.database,
            )
        if isinstance(node, ArrayLiteral):
            return [self.value(item) for item in node.items]
        value = self.bound(node)
        if isinstance(value, tuple):
            value = list(value)
        try:
            to_value(value)
        except ValueError as exc:
            if len(exc.args) == 1:  # "Value out of range: ..."
                reason = f"{node} is bound to an invalid value: {exc.args[0]}"
            else:  # ("Unknown protobuf attr type", type)
                reason = f"{node} is bound to a {type(value).__name__}, not a Datastore value"
            raise _error(self.text, node.offset, reason) from None
        return value

    def position(self, node: Position, role: str) -> tuple[str, Any]:
        """``("count", int)`` or ``("cursor", token)`` for a LIMIT / OFFSET operand."""
        if isinstance(node, Literal):
            return "count", node.value
        value = self.bound(node)
        if isinstance(value, int) and not isinstance(value, bool):
            return "count", value
        if isinstance(value, (bytes, str)):
            try:
                _decode_token(value)
            except exceptions.InvalidArgument as exc:
                raise _error(self.text, node.offset, f"{node} in {role}: {exc.message}") from None
            return "cursor", value
        raise _error(
            self.text,
            node.offset,
            f"{node} in {role} is bound to a {type(value).__name__}; expected an integer or a "
            "cursor (a next_page_token)",
        )


@dataclass
class _Window:
    """LIMIT / OFFSET / cursors of a select, resolved."""

    limit: int | None = None
    offset: int = 0
    start_cursor: bytes | str | None = None
    end_cursor: bytes | str | None = None


def _window(binder: _Binder, select: GqlSelect) -> _Window:
    window = _Window()
    text = binder.text
    if select.limit:
        resolved = [binder.position(p, "LIMIT") for p in select.limit]
        kinds = sorted(kind for kind, _ in resolved)
        if len(resolved) == 2 and kinds != ["count", "cursor"]:
            raise _error(
                text,
                select.limit[0].offset,
                "LIMIT FIRST(a, b) needs one integer and one cursor @binding",
            )
        for node, (kind, value) in zip(select.limit, resolved):
            if kind == "cursor":
                window.end_cursor = value
            elif value < 0:
                raise _error(text, node.offset, f"the limit {value} is < 0")
            else:
                window.limit = value
    if select.offset:
        resolved = [binder.position(p, "OFFSET") for p in select.offset]
        if len(resolved) == 2 and (resolved[0][0], resolved[1][0]) != ("cursor", "count"):
            raise _error(
                text, select.offset_at, "OFFSET a + b needs a cursor @binding + an integer"
            )
        for kind, value in resolved:
            if kind == "cursor":
                window.start_cursor = value
            elif value < 0:
                raise _error(text, select.offset_at, f"the offset {value} is < 0")
            else:
                window.offset = value
    return window


def _filters(binder: _Binder, where: Condition | Compound | None) -> tuple[list[Any], Key | None]:
    """Query ``filters`` (tuples for the top-level ANDed conditions) and the ancestor."""
    if where is None:
        return [], None
    top = list(where.parts) if isinstance(where, Compound) and where.op == "AND" else [where]
    while any(isinstance(p, Compound) and p.op == "AND" for p in top):  # (a AND b) AND c
        flat: list[Condition | Compound] = []
        for part in top:
            flat.extend(part.parts if isinstance(part, Compound) and part.op == "AND" else [part])
        top = flat
    filters: list[Any] = []
    ancestor: Key | None = None
    for part in top:
        if isinstance(part, Compound):
            filters.append(_compound(binder, part))
        elif part.op == "HAS_ANCESTOR":
            if ancestor is not None:
                raise _error(binder.text, part.offset, "a query can have only one HAS ANCESTOR")
            value = binder.value(part.value)
            if not isinstance(value, Key):
                raise _error(
                    binder.text,
                    part.offset,
                    f"HAS ANCESTOR needs a key, not a {type(value).__name__}",
                )
            ancestor = value
        else:
            filters.append(_condition(binder, part))
    return filters, ancestor


def _compound(binder: _Binder, node: Compound) -> BaseFilter:
    parts: list[BaseFilter] = []
    for part in node.parts:
        if isinstance(part, Compound):
            parts.append(_compound(binder, part))
        else:
            if part.op == "HAS_ANCESTOR":
                raise _error(
                    binder.text,
                    part.offset,
                    "HAS ANCESTOR must be ANDed at the top level of WHERE, not inside OR",
                )
            parts.append(PropertyFilter(*_condition(binder, part)))
    return Or(parts) if node.op == "OR" else And(parts)


def _condition(binder: _Binder, node: Condition) -> tuple[str, str, Any]:
    """``(property, operator, value)`` in the Query API's terms."""
    value = binder.value(node.value)
    op = node.op
    is_list = isinstance(value, list)
    if op == "CONTAINS":  # CONTAINS is = on a multi-valued property
        op = "IN" if is_list else "="
    elif op in ("IN", "NOT_IN"):
        if not is_list:  # emulator: "n IN 5" means n IN ARRAY(5)
            value, is_list = [value], True
    elif is_list:
        raise _error(
            binder.text,
            node.offset,
            f"a list value is only allowed with IN, NOT IN or CONTAINS, not {op}",
        )
    if is_list and any(isinstance(item, list) for item in value):
        raise _error(binder.text, node.offset, "an array cannot contain another array")
    if node.prop == KEY_PROPERTY:
        items = value if is_list else [value]
        for item in items:
            if not isinstance(item, Key):
                raise _error(
                    binder.text,
                    node.offset,
                    f"__key__ can only be compared with keys, not a {type(item).__name__}",
                )
    return node.prop, op, value


def _select_kwargs(binder: _Binder, select: GqlSelect) -> dict[str, Any]:
    filters, ancestor = _filters(binder, select.where)
    return {
        "kind": select.kind,
        "filters": filters,
        "ancestor": ancestor,
        "projection": list(select.projection),
        "distinct_on": list(select.distinct_on),
        "order": [f"-{name}" if descending else name for name, descending in select.order],
    }


def build(
    client: Client,
    query_string: str,
    positional_bindings: Sequence[Any] = (),
    named_bindings: Mapping[str, Any] | None = None,
    *,
    allow_literals: bool = True,
) -> GqlQuery | GqlAggregationQuery:
    """Parse and bind GQL into a query on ``client`` (what ``Client.gql()`` calls).

    Args:
        client: The client the query runs on; its project, database and namespace apply
            (also to ``KEY(...)`` literals without ``PROJECT``/``NAMESPACE``).
        query_string: The GQL text.
        positional_bindings: Values of ``@1``, ``@2``, ... (every one must be used).
        named_bindings: Values of ``@name`` sites (every one must be used).
        allow_literals: ``False`` rejects any literal in the text (values must be bound),
            as ``GqlQuery.allow_literals`` does in the Datastore API.

    Returns:
        A :class:`GqlQuery`, or a :class:`GqlAggregationQuery` for aggregation GQL.

    Raises:
        GqlSyntaxError: The text is not GQL.
        InvalidArgument: A binding is missing, unused or of the wrong type; a value is
            invalid where it is used.
    """
    parsed = _parse(query_string)
    binder = _Binder(
        client, query_string, positional_bindings, named_bindings or {}, allow_literals
    )
    binder.check_sites(parsed)
    statement = parsed.statement
    select = statement.query if isinstance(statement, GqlAggregate) else statement
    window = _window(binder, select)
    query = GqlQuery(
        client,
        query_string=query_string,
        limit=window.limit,
        offset=window.offset,
        start_cursor=window.start_cursor,
        end_cursor=window.end_cursor,
        **_select_kwargs(binder, select),
    )
    if not isinstance(statement, GqlAggregate):
        return query
    if select.offset or window.end_cursor is not None:
        at = select.offset_at if select.offset else select.limit[0].offset
        raise _error(
            query_string,
            at,
            "datastore_lite aggregations support LIMIT n but not OFFSET or cursors",
        )
    aggregation_query = GqlAggregationQuery(client, query, query_string=query_string)
    for item in statement.aggregations:
        if item.function == "COUNT":
            aggregation_query.count(alias=item.alias)
        elif item.function == "SUM":
            assert item.prop is not None
            aggregation_query.sum(item.prop, alias=item.alias)
        elif item.function == "AVG":
            assert item.prop is not None
            aggregation_query.avg(item.prop, alias=item.alias)
        else:
            assert item.up_to is not None
            kind, up_to = binder.position(item.up_to, "COUNT_UP_TO")
            if kind != "count" or up_to <= 0:
                raise _error(
                    query_string, item.up_to.offset, "COUNT_UP_TO needs a positive integer"
                )
            aggregation_query.add_aggregation(CountUpToAggregation(up_to, alias=item.alias))
    return aggregation_query


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
                )
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
