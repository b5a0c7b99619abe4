"""JSON load/dump for start-up paths, without importing the json package.

`import json` pulls in `re` and `enum` (~9 ms), a quarter of a container's
start-up budget. The C accelerator `_json` that json itself uses does the real
work here; on malformed input we fall back to the json package, so error
messages are exactly Python's usual ones.
"""

from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"


class _ScanContext:
    # The attributes _json.make_scanner reads; same defaults as json.JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_ScanContext())


def loads(text: str | bytes):
    """Parse a JSON document; raises json.JSONDecodeError (a ValueError) when malformed."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8-sig")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except Exception:
        value, end = None, -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json  # slow path only for bad input: precise line/column errors

        return json.loads(text)
    return value


def load_file(path: str):
    with open(path, "rb") as f:
        return loads(f.read())


def dumps(value, indent: int | None = None) -> str:
    """Serialise to JSON (ASCII, like json.dumps defaults; `indent` for humans)."""
    parts: list[str] = []
    _emit(value, parts, indent, 0)
    return "".join(parts)


def _emit(value, out: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(repr(value) if isinstance(value, float) else str(int(value)))
    elif isinstance(value, dict):
        _emit_container(out, "{", "}", value.items(), indent, depth, keyed=True)
    elif isinstance(value, list | tuple):
        _emit_container(out, "[", "]", value, indent, depth, keyed=False)
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def _emit_container(out: list[str], open_: str, close: str, items, indent: int | None, depth: int,
                    keyed: bool) -> None:
    out.append(open_)
    sep = ", " if indent is None else ","
    first = True
    for item in items:
        if not first:
            out.append(sep)
        first = False
        if indent is not None:
            out.append("\n" + " " * (indent * (depth + 1)))
        if keyed:
            key, item = item
            out.append(_json.encode_basestring_ascii(str(key)))
            out.append(": ")
        _emit(item, out, indent, depth + 1)
    if indent is not None and not first:
        out.append("\n" + " " * (indent * depth))
    out.append(close)
