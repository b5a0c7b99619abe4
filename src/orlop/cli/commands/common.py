"""Small pieces several commands share: KEY=VALUE options, per-object daemon errors."""

from __future__ import annotations

import os
import sys

from orlop.cli.errors import CommandError


def key_values(values: list[str], what: str, from_env: bool = False) -> dict[str, str]:
    """KEY=VALUE options (--label, --opt, --build-arg) as a map; a bare KEY is "", or with
    `from_env` the client's own $KEY, as the docker CLI reads --build-arg."""
    found = {}
    for value in values or []:
        key, eq, rest = value.partition("=")
        if not key:
            raise CommandError(f"invalid {what}: {value!r}")
        found[key] = rest if eq or not from_env else os.environ.get(key, "")
    return found


def report_errors(errors: list[str]) -> int:
    if not errors:
        return 0
    sys.stdout.flush()
    sys.stderr.write("".join(f"Error response from daemon: {e}\n" for e in errors))
    return 1
