"""Helpers every route module uses: Docker's JSON bodies, booleans, errors."""

from __future__ import annotations

import json

from aiohttp import web

from orlop.errors import InvalidParameter


def json_response(value, status: int = 200) -> web.Response:
    # Exactly "application/json": the docker CLI compares the header string.
    return web.Response(body=json.dumps(value).encode() + b"\n", status=status, content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return web.Response(body=json.dumps({"message": message}).encode() + b"\n", status=status,
                        content_type="application/json")


def boolean(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() not in ("", "0", "false", "no")


async def json_body(request: web.Request, allow_empty: bool = False):
    data = await request.read()
    if not data.strip():
        if allow_empty:
            return None
        raise InvalidParameter("the request needs a JSON body")
    try:
        value = json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"malformed JSON in the request body: {e}") from None
    if value is None and allow_empty:  # `null`: what a Go client sends for no body (docker commit)
        return None
    if not isinstance(value, dict):  # every body of the Engine API is an object
        raise InvalidParameter(f"the request body must be a JSON object, not {type(value).__name__}")
    return value


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """The `filters` query parameter: JSON {"name": ["a"]} or {"name": {"a": true}}."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidParameter(f"invalid filters: {raw!r} is not a JSON object")
    return {k: list(v) if isinstance(v, dict | list) else [v] for k, v in parsed.items()}


def label_matches(labels: dict | None, wanted: str) -> bool:
    """A `label=` filter value: "key" (present) or "key=value"."""
    key, eq, value = wanted.partition("=")
    return key in (labels or {}) and (not eq or (labels or {})[key] == value)


def matches_filters(filters: dict[str, list[str]], checks: dict, labels: dict | None = None) -> bool:
    """moby's filters.Args: a key's values are alternatives (name=a&name=b: either), except
    `label`, whose values must all match (as compose asks project=x and service=y), and
    `label!`, none of whose may; a key without a check is refused."""
    for key, values in filters.items():
        if key == "label" and labels is not None:
            if not all(label_matches(labels, v) for v in values):
                return False
            continue
        if key == "label!" and labels is not None:
            if any(label_matches(labels, v) for v in values):
                return False
            continue
        check = checks.get(key)
        if check is None:
            raise InvalidParameter(f"invalid filter '{key}'")
        if not any(check(v) for v in values):
            return False
    return True
