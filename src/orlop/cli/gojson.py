"""JSON as Go's encoding/json writes it (what the docker CLI sends and prints): compact,
UTF-8 kept as is, `<`, `>`, `&`, U+2028 and U+2029 escaped; `indent` for inspect's
pretty form. Built on the `_json` C module, without the json package."""

from __future__ import annotations

import _json

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def string(text: str, escape_html: bool = True) -> str:
    encoded = _json.encode_basestring(text)
    if escape_html and any(c in encoded for c in _HTML):
        encoded = "".join(_HTML.get(c, c) for c in encoded)
    return encoded


def number(value) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(int(value))


def dumps(value, indent: str | None = None, escape_html: bool = True) -> str:
    out: list[str] = []
    _emit(value, out, indent, "", escape_html)
    return "".join(out)


def _emit(value, out: list[str], indent: str | None, prefix: str, escape_html: bool) -> None:
    if isinstance(value, str):
        out.append(string(value, escape_html))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(number(value))
    elif isinstance(value, dict):
        if any(callable(v) for v in value.values()):  # methods of a formatter row are not data
            value = {k: v for k, v in value.items() if not callable(v)}
        if not value:
            out.append("{}")
            return
        inner = None if indent is None else prefix + indent
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            if inner is not None:
                out.append("\n" + inner)
            out.append(string(str(key), escape_html))
            out.append(":" if inner is None else ": ")
            _emit(item, out, indent, inner or "", escape_html)
        out.append("}" if inner is None else "\n" + prefix + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = None if indent is None else prefix + indent
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            if inner is not None:
                out.append("\n" + inner)
            _emit(item, out, indent, inner or "", escape_html)
        out.append("]" if inner is None else "\n" + prefix + "]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")
