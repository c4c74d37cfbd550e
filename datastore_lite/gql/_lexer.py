"""GQL tokens and syntax errors (the lexical rules are in the package docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import exceptions

if TYPE_CHECKING:
    pass


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
