"""The subset of KQL the bundled objects use, parsed into a tree that yields both the search DSL
(for running a panel's query on the real engine) and the fields it touches (for the mapping check).

Grammar: `or` / `and` / `not`, parentheses, `field: value`, `field: (a or b)`, `field: "phrase"`,
`field: *` (exists), `field: pre*` (wildcard), `field >= 5` (range). Anything else is a parse error,
so an object using more than this subset fails validation instead of being checked half-way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r'\s*(?:(?P<op><=|>=|<|>|:|\(|\))|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s():<>"]+))')
_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


class KqlError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    """One `field <op> value` clause. use: match | phrase | exists | wildcard | range."""

    name: str
    use: str
    value: str = ""
    op: str = ":"


Node = tuple[Any, ...]  # ("and"|"or", [nodes]) | ("not", node) | ("field", Field) | ("all",)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise KqlError(f"cannot parse KQL at {text[pos:]!r}")
        pos = m.end()
        if m.group("op"):
            out.append(("op", m.group("op")))
        elif m.group("quoted") is not None:
            out.append(("quoted", m.group("quoted").replace('\\"', '"')))
        else:
            word = m.group("word")
            low = word.lower()
            out.append(("kw", low) if low in ("and", "or", "not") else ("word", word))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise KqlError("unexpected end of query")
        self.i += 1
        return tok

    def expect(self, kind: str, value: str) -> None:
        tok = self.take()
        if tok != (kind, value):
            raise KqlError(f"expected {value!r}, got {tok[1]!r}")

    def parse(self) -> Node:
        if not self.toks:
            return ("all",)
        node = self.or_()
        if self.peek() is not None:
            raise KqlError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.peek() == ("kw", "or"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.peek() == ("kw", "and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def not_(self) -> Node:
        if self.peek() == ("kw", "not"):
            self.take()
            return ("not", self.not_())
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok == ("op", "("):
            node = self.or_()
            self.expect("op", ")")
            return node
        if tok[0] != "word":
            raise KqlError(f"expected a field name, got {tok[1]!r} (free-text search is not supported)")
        name = tok[1]
        op = self.take()
        if op[0] != "op" or op[1] in ("(", ")"):
            raise KqlError(f"expected ':' or a comparison after {name!r}")
        if op[1] in _RANGE:
            value = self.take()
            if value[0] not in ("word", "quoted"):
                raise KqlError(f"expected a value after {name} {op[1]}")
            return ("field", Field(name, "range", value[1], op[1]))
        if self.peek() == ("op", "("):
            self.take()
            values = [self.value(name)]
            while self.peek() == ("kw", "or"):
                self.take()
                values.append(self.value(name))
            self.expect("op", ")")
            return values[0] if len(values) == 1 else ("or", values)
        return self.value(name)

    def value(self, name: str) -> Node:
        tok = self.take()
        if tok[0] == "quoted":
            return ("field", Field(name, "phrase", tok[1]))
        if tok[0] != "word":
            raise KqlError(f"expected a value for {name!r}, got {tok[1]!r}")
        if tok[1] == "*":
            return ("field", Field(name, "exists"))
        if "*" in tok[1]:
            return ("field", Field(name, "wildcard", tok[1]))
        return ("field", Field(name, "match", tok[1]))


def parse(text: str) -> Node:
    return _Parser(text or "").parse()


def fields(node: Node) -> list[Field]:
    kind = node[0]
    if kind == "field":
        return [node[1]]
    if kind == "not":
        return fields(node[1])
    if kind in ("and", "or"):
        return [f for part in node[1] for f in fields(part)]
    return []


def to_dsl(node: Node) -> dict[str, Any]:
    """The query Kibana would send for this KQL (same clause kinds, simplified nesting)."""
    kind = node[0]
    if kind == "all":
        return {"match_all": {}}
    if kind == "and":
        return {"bool": {"filter": [to_dsl(p) for p in node[1]]}}
    if kind == "or":
        return {"bool": {"should": [to_dsl(p) for p in node[1]], "minimum_should_match": 1}}
    if kind == "not":
        return {"bool": {"must_not": [to_dsl(node[1])]}}
    f: Field = node[1]
    if f.use == "exists":
        return {"exists": {"field": f.name}}
    if f.use == "wildcard":
        return {"wildcard": {f.name: {"value": f.value}}}
    if f.use == "range":
        return {"range": {f.name: {_RANGE[f.op]: f.value}}}
    if f.use == "phrase":
        return {"match_phrase": {f.name: f.value}}
    return {"match": {f.name: f.value}}


def query_dsl(query: Any) -> dict[str, Any]:
    """A Kibana query object ({query, language}) to DSL; only KQL is supported."""
    if not isinstance(query, dict):
        raise KqlError("query must be an object {query, language}")
    if query.get("language", "kuery") != "kuery":
        raise KqlError(f"only KQL queries are supported, not {query.get('language')!r}")
    return to_dsl(parse(str(query.get("query") or "")))
