"""The README's wire contract, read from its TypeScript-style block and used as a validator.

The README holds the one written contract (``## Wire contract``, the first ```` ```ts ````
block). This module parses the small TypeScript subset that block uses and checks JSON values
against it, so every event the integration suite receives and the REST bodies it reads are held
to the declarations the frontend was written against.

The subset: ``type Name = T;`` and ``interface Name { field: T; 'quoted:field'?: T; }`` where
``T`` is a union (``|``) of ``string``, ``number``, ``boolean``, ``null``, ``unknown``, string
literals, ``Name``, ``T[]``, ``Record<string, T>``, inline ``{ ... }`` objects and ``( T )``.
Objects are closed: a field the contract does not declare is a violation, so the code cannot
grow the wire format without the README saying so. ``IsoDate`` is checked as ISO-8601 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"

_TOKEN = re.compile(r"\s*(?:(//[^\n]*)|('[^']*')|([A-Za-z_][A-Za-z0-9_]*)|(\[\])|([{}()<>;:?,|=]))")
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class ContractSyntaxError(ValueError):
    """The README's contract block uses something this parser does not read."""


@dataclass(frozen=True)
class Ref:
    """A named type (declared in the block, or a primitive)."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A string literal type such as ``'INBOUND'``."""

    value: str


@dataclass(frozen=True)
class ArrayOf:
    """``T[]``."""

    item: Any


@dataclass(frozen=True)
class RecordOf:
    """``Record<string, T>``."""

    value: Any


@dataclass(frozen=True)
class Union:
    """``A | B | ...``."""

    options: tuple[Any, ...]


@dataclass(frozen=True)
class Obj:
    """An object type: field name -> (type, optional)."""

    fields: dict[str, tuple[Any, bool]] = field(hash=False)


PRIMITIVES = {"string", "number", "boolean", "null", "unknown", "any"}


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ContractSyntaxError(f"cannot read the contract at: {text[pos : pos + 40]!r}")
        pos = match.end()
        comment, literal, name, array, punct = match.groups()
        if comment is None:
            out.append(literal or name or array or punct)
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ContractSyntaxError(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def declarations(self) -> dict[str, Any]:
        types: dict[str, Any] = {}
        while self.peek() is not None:
            keyword = self.take()
            name = self.take()
            if name in types:
                raise ContractSyntaxError(f"{name} is declared twice")
            if keyword == "type":
                self.take("=")
                types[name] = self.union()
                self.take(";")
            elif keyword == "interface":
                types[name] = self.object()
            else:
                raise ContractSyntaxError(f"expected 'type' or 'interface', got {keyword!r}")
        return types

    def object(self) -> Obj:
        self.take("{")
        fields: dict[str, tuple[Any, bool]] = {}
        while self.peek() != "}":
            key = self.take()
            if key.startswith("'"):
                key = key[1:-1]
            optional = self.peek() == "?"
            if optional:
                self.take("?")
            self.take(":")
            fields[key] = (self.union(), optional)
            if self.peek() in (";", ","):
                self.take()
        self.take("}")
        return Obj(fields)

    def union(self) -> Any:
        if self.peek() == "|":
            self.take("|")
        options = [self.postfix()]
        while self.peek() == "|":
            self.take("|")
            options.append(self.postfix())
        return options[0] if len(options) == 1 else Union(tuple(options))

    def postfix(self) -> Any:
        node = self.primary()
        while self.peek() == "[]":
            self.take("[]")
            node = ArrayOf(node)
        return node

    def primary(self) -> Any:
        token = self.peek()
        if token == "{":
            return self.object()
        if token == "(":
            self.take("(")
            inner = self.union()
            self.take(")")
            return inner
        token = self.take()
        if token.startswith("'"):
            return Literal(token[1:-1])
        if token == "Record":
            self.take("<")
            self.take("string")
            self.take(",")
            value = self.union()
            self.take(">")
            return RecordOf(value)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token):
            raise ContractSyntaxError(f"unexpected {token!r}")
        return Ref(token)


def parse_contract(text: str) -> dict[str, Any]:
    """Return the declarations of a contract block, by name; raise ContractSyntaxError."""
    types = _Parser(_tokens(text)).declarations()
    for node in types.values():
        _check_refs(node, types)
    return types


def _check_refs(node: Any, types: dict[str, Any]) -> None:
    if isinstance(node, Ref):
        if node.name not in types and node.name not in PRIMITIVES:
            raise ContractSyntaxError(f"{node.name} is used but never declared")
    elif isinstance(node, Union):
        for option in node.options:
            _check_refs(option, types)
    elif isinstance(node, ArrayOf):
        _check_refs(node.item, types)
    elif isinstance(node, RecordOf):
        _check_refs(node.value, types)
    elif isinstance(node, Obj):
        for kind, _ in node.fields.values():
            _check_refs(kind, types)


def readme_block(readme: str) -> str:
    """Return the first ```ts block after the README's ``## Wire contract`` heading."""
    section = readme.split("## Wire contract", 1)[1]
    match = re.search(r"```ts\n(.*?)```", section, re.S)
    if match is None:
        raise ContractSyntaxError("the README's wire contract has no ```ts block")
    return match.group(1)


@cache
def contract() -> dict[str, Any]:
    """The README's contract, parsed once per test session."""
    return parse_contract(readme_block(README.read_text(encoding="utf-8")))


def violations(value: Any, type_name: str, types: dict[str, Any] | None = None) -> list[str]:
    """Return what is wrong with ``value`` as a ``type_name`` (empty when it conforms)."""
    types = contract() if types is None else types
    out: list[str] = []
    _check(value, Ref(type_name), types, type_name, out)
    return out


def event_violations(event: str, args: Any, types: dict[str, Any] | None = None) -> list[str]:
    """Return what is wrong with one server -> client event ``event`` carrying ``args``."""
    types = contract() if types is None else types
    events = types["ServerToClientEvents"]
    assert isinstance(events, Obj)
    declared = events.fields.get(event)
    if declared is None:
        return [f"event {event!r} is not in ServerToClientEvents"]
    out: list[str] = []
    _check(args, declared[0], types, event, out)
    return out


def _check(value: Any, node: Any, types: dict[str, Any], where: str, out: list[str]) -> None:
    if isinstance(node, Ref):
        name = node.name
        if name in ("unknown", "any"):
            return
        if name == "string":
            if not isinstance(value, str):
                out.append(f"{where}: expected string, got {value!r}")
        elif name == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                out.append(f"{where}: expected number, got {value!r}")
        elif name == "boolean":
            if not isinstance(value, bool):
                out.append(f"{where}: expected boolean, got {value!r}")
        elif name == "null":
            if value is not None:
                out.append(f"{where}: expected null, got {value!r}")
        elif name == "IsoDate":
            if not isinstance(value, str) or not _ISO_UTC.match(value):
                out.append(f"{where}: expected an ISO-8601 UTC timestamp, got {value!r}")
        else:
            _check(value, types[name], types, where, out)
    elif isinstance(node, Literal):
        if value != node.value:
            out.append(f"{where}: expected {node.value!r}, got {value!r}")
    elif isinstance(node, Union):
        for option in node.options:
            attempt: list[str] = []
            _check(value, option, types, where, attempt)
            if not attempt:
                return
        out.append(f"{where}: {value!r} matches none of {_describe(node)}")
    elif isinstance(node, ArrayOf):
        if not isinstance(value, list):
            out.append(f"{where}: expected an array, got {value!r}")
            return
        for i, item in enumerate(value):
            _check(item, node.item, types, f"{where}[{i}]", out)
    elif isinstance(node, RecordOf):
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object, got {value!r}")
            return
        for key, item in value.items():
            _check(item, node.value, types, f"{where}.{key}", out)
    elif isinstance(node, Obj):
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object, got {value!r}")
            return
        for key in value.keys() - node.fields.keys():
            out.append(f"{where}.{key}: not in the contract")
        for key, (kind, optional) in node.fields.items():
            if key not in value:
                if not optional:
                    out.append(f"{where}.{key}: missing")
                continue
            _check(value[key], kind, types, f"{where}.{key}", out)


def _describe(node: Any) -> str:
    if isinstance(node, Union):
        return " | ".join(_describe(o) for o in node.options)
    if isinstance(node, Ref):
        return node.name
    if isinstance(node, Literal):
        return repr(node.value)
    return type(node).__name__
