"""A container's filesystem as a whole: `orlop diff`, `orlop export`, `orlop commit`."""

from __future__ import annotations

import os
import sys

from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag

KIND_LETTERS = {0: "C", 1: "A", 2: "D"}

DIFF_SPEC = Spec("diff", "orlop diff CONTAINER", "Inspect changes to files or directories on a container's "
                 "filesystem", [], min_args=1, max_args=1, aliases="orlop container diff, orlop diff")


@command(DIFF_SPEC)
def diff(cli, opts, args):
    changes = cli.client.get(f"/containers/{args[0]}/changes") or []
    sys.stdout.write("".join(f"{KIND_LETTERS.get(c.get('Kind'), '?')} {c.get('Path')}\n" for c in changes))
    return 0


EXPORT_SPEC = Spec("export", "orlop export [OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", [
    flag("-o, --output", "string", "Write to a file, instead of STDOUT"),
], min_args=1, max_args=1, aliases="orlop container export, orlop export")


@command(EXPORT_SPEC)
def export(cli, opts, args):
    from orlop.cli.streams import save_archive

    if not opts.output and os.isatty(1):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    response = cli.client.request("GET", f"/containers/{args[0]}/export")
    try:
        save_archive(response, opts.output, "failed to export container")
    finally:
        response.close()
    return 0


COMMIT_SPEC = Spec("commit", "orlop commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                   "Create a new image from a container's changes", [
                       flag("-a, --author", "string", "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")"),
                       flag("-c, --change", "list", "Apply Dockerfile instruction to the created image"),
                       flag("-m, --message", "string", "Commit message"),
                       flag("-p, --pause", "bool", "Pause container during commit", True),
                   ], min_args=1, max_args=2, aliases="orlop container commit, orlop commit")


@command(COMMIT_SPEC)
def commit(cli, opts, args):
    query: list[tuple[str, object]] = [("container", args[0])]
    if len(args) > 1:
        from orlop.cli.commands.images import _reference

        ref = _reference(args[1])
        if ref.digest:
            raise CommandError("refusing to create a tag with a digest reference")
        query += [("repo", ref.familiar_name),
                  ("tag", ref.tag or "")]
    query += [("comment", opts.message or None), ("author", opts.author or None)]
    query += [("changes", change) for change in opts.change]
    if not opts.pause:
        query.append(("pause", "0"))
    answer = cli.client.call("POST", "/commit", query, body=b"null\n", headers={"Content-Type": "application/json"})
    sys.stdout.write((answer or {}).get("Id", "") + "\n")
    return 0
