"""The recursive-descent GQL parser: tokens to syntax tree."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
from typing import TYPE_CHECKING

from ._lexer import (
    _BLOB,
    _CLAUSES,
    _DATETIME,
    _FUNCTIONS,
    _STRUCTURAL,
    _VALUE_EXPECTED,
    KEY_PROPERTY,
    RESERVED,
    GqlSyntaxError,
    _Token,
    _tokenize,
)
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
    Position,
    Value,
    _Parsed,
)

if TYPE_CHECKING:
    pass


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
