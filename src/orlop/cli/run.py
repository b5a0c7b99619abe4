"""`orlop run` and `orlop create`, as docker's: create (pulling a missing image, then
creating again), then for run: attach before start so that no output is lost, wait
(next-exit, or removed with --rm) with its headers in before start, start, stream, and
exit with the container's status. Failures are 125, or 126/127 when the command
cannot be run or found (the daemon's start error says which)."""

from __future__ import annotations

import os
import sys

from orlop.cli import containeropts
from orlop.cli import tty as terminal
from orlop.cli.client import APIError, ConnectError
from orlop.cli.errors import CommandError
from orlop.cli.flags import command


class RunError(CommandError):
    """An error of run/create: shown as `orlop: <error>` with a pointer to --help."""


def _err(text: str) -> None:
    sys.stdout.flush()
    os.write(2, (text + "\n").encode())


def _with_help(name: str, error: Exception, status: int = 125) -> RunError:
    if isinstance(error, APIError):
        message = f"Error response from daemon: {error.message}"
    else:
        message = str(error)
    return RunError(f"orlop: {message}\n\nRun 'orlop {name} --help' for more information", status)


def start_error_status(message: str) -> int:
    """docker's toStatusError: 127 when the command is not found, 126 when it cannot be
    invoked, else 125."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def create_container(cli, opts, args: list[str], body: dict) -> str:
    """POST /containers/create; a missing image is pulled (progress on stderr), then again."""
    client = cli.client
    image = args[0]
    query = {"name": opts.name, "platform": opts.platform}
    cidfile = _open_cidfile(opts.cidfile) if opts.cidfile else None  # refused before anything is created
    try:
        if opts.pull == "always":
            _pull(cli, image, opts)
        try:
            answer = client.post("/containers/create", query, body)
        except APIError as e:
            if e.status != 404 or opts.pull == "never" or "image" not in e.message.lower():
                raise
            _err(f"Unable to find image '{_familiar(image)}' locally")
            _pull(cli, image, opts)
            answer = client.post("/containers/create", query, body)
    except BaseException:
        if cidfile is not None:
            cidfile.close()
            os.unlink(opts.cidfile)
        raise
    for warning in answer.get("Warnings") or []:
        _err(f"WARNING: {warning}")
    cid = answer["Id"]
    if cidfile is not None:
        with cidfile:
            cidfile.write(cid)
    return cid


def _familiar(image: str) -> str:
    try:
        from orlop.images.reference import parse

        return parse(image).familiar
    except Exception:
        return image


def _pull(cli, image: str, opts) -> None:
    from orlop.cli.commands.images import pull_image

    pull_image(cli, image, fd=2, quiet=opts.quiet, platform=opts.platform)


def _open_cidfile(path: str):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise CommandError(f"container ID file found, make sure the other container isn't running or delete "
                           f"{path}") from None
    except OSError as e:
        raise CommandError(f"failed to create the container ID file: {e.strerror}: {path}") from None
    return os.fdopen(fd, "w")


@command(containeropts.CREATE_SPEC)
def create(cli, opts, args):
    try:
        console = terminal.size(1) if opts.tty else None
        body = containeropts.build(opts, args, detach=False, console_size=console)
        cid = create_container(cli, opts, args, body)
    except (APIError, ConnectError, CommandError) as e:
        raise _with_help("create", e, getattr(e, "status", 125) if isinstance(e, CommandError) else 125) from None
    sys.stdout.write(cid + "\n")
    return 0


@command(containeropts.RUN_SPEC)
def run(cli, opts, args):
    if opts.tty and not opts.detach and containeropts.attach_streams(opts)[0] and not terminal.is_terminal(0):
        raise CommandError("the input device is not a TTY")
    try:
        return _run(cli, opts, args)
    except RunError:
        raise
    except (APIError, ConnectError) as e:
        raise _with_help("run", e) from None
    except CommandError as e:
        raise _with_help("run", e, e.status if e.status != 1 else 125) from None


def _run(cli, opts, args) -> int:
    client = cli.client
    detach = bool(opts.detach)
    stdin, stdout, stderr = (False, False, False) if detach else containeropts.attach_streams(opts)
    if opts.detach_keys:
        try:
            terminal.detach_key_bytes(opts.detach_keys)
        except ValueError as e:
            raise CommandError(str(e)) from None
    console = terminal.size(1) if opts.tty else None
    body = containeropts.build(opts, args, detach=detach, console_size=console)
    cid = create_container(cli, opts, args, body)

    if detach:
        try:
            client.call("POST", f"/containers/{cid}/start")
        except APIError as e:
            raise _with_help("run", e, start_error_status(e.message)) from None
        sys.stdout.write(cid + "\n")
        return 0

    from orlop.cli.attach import Attachment, attach_query

    attachment = Attachment(client, cid, tty=bool(opts.tty), stdin=stdin, detach_keys=opts.detach_keys,
                            sig_proxy=bool(opts.sig_proxy))
    waiter = None
    try:
        if stdin or stdout or stderr:
            attachment.open(f"/containers/{cid}/attach", attach_query(stdin, stdout, stderr))
        # The wait's headers arrive at once; its body when the container exits (or is removed).
        waiter = client.receive(client.send("POST", f"/containers/{cid}/wait",
                                            {"condition": "removed" if opts.rm else "next-exit"}), "POST")
        if waiter.status >= 400:
            from orlop.cli.client import error_of

            raise error_of(waiter)
        try:
            client.call("POST", f"/containers/{cid}/start")
        except APIError as e:
            attachment.close()
            if opts.rm:
                _wait_status(waiter)  # until --rm removed it
            raise _with_help("run", e, start_error_status(e.message)) from None
        if attachment.sock is not None:
            outcome = attachment.stream()
            if outcome == "detached":
                return 0
        return _wait_status(waiter)
    finally:
        attachment.close()
        if waiter is not None:
            waiter.close()


def _wait_status(waiter) -> int:
    try:
        result = waiter.json() or {}
    except (ConnectError, ValueError) as e:
        raise CommandError(f"Error waiting for container: {e}", 125) from None
    error = result.get("Error")
    if error and error.get("Message"):
        raise CommandError(f"Error waiting for container: {error['Message']}", 125)
    return int(result.get("StatusCode", 125))
