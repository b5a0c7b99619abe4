"""`orlop explain CONTAINER|IMAGE`: how a container is isolated (its pids on both sides,
namespaces, root filesystem, cgroup, capabilities, seccomp, network) or what an image's
layers hold, as orlopd computes it; `--json` prints the daemon's answer as it is."""

from __future__ import annotations

import os
import sys

from orlop.cli.client import APIError
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag

SPEC = Spec("explain", "orlop explain [OPTIONS] CONTAINER|IMAGE", "Show how a container is isolated, or what an "
            "image's layers hold", [
                flag("--json", "bool", "Print the daemon's answer as JSON (keys: docs/explain.md)"),
                flag("--type", "string", "Only explain an object of this type (container or image)"),
            ], min_args=1, max_args=1)

_PATHS = {"container": "/containers/{}/explain", "image": "/images/{}/explain"}


def fetch(client, name: str, kind: str | None) -> dict:
    if kind and kind not in _PATHS:
        raise CommandError(f'"{kind}" is not a valid value for --type (container or image)')
    for k in [kind] if kind else list(_PATHS):
        try:
            return client.get(_PATHS[k].format(name))
        except APIError as e:
            if e.status != 404:
                raise
            if kind:
                raise
    raise CommandError(f"Error: No such container or image: {name}")


def wants_colour(stream) -> bool:
    return not os.environ.get("NO_COLOR") and stream.isatty()


@command(SPEC)
def explain(cli, opts, args):
    data = fetch(cli.client, args[0], opts.type)
    if opts.json:
        from orlop.cli import gojson

        sys.stdout.write(gojson.dumps(data, indent="  ", escape_html=False) + "\n")
        return 0
    from orlop.cli.explain_view import render

    sys.stdout.write(render(data, colour=wants_colour(sys.stdout)))
    return 0
