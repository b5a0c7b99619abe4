"""Container commands besides run/create and ps/stats: start, stop, restart, kill, rm,
pause, unpause, rename, wait, attach, exec, logs, top, container prune."""

from __future__ import annotations

import sys

from orlop.cli import tty as terminal
from orlop.cli import units
from orlop.cli.client import APIError
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag


def _report(error: APIError) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"Error response from daemon: {error.message}\n")
    sys.stderr.flush()


def _each(cli, names: list[str], method: str, path: str, query=None, what: str = "") -> int:
    """One request per container, its name printed on success (docker's loop); 1 if any failed."""
    failed = []
    for name in names:
        try:
            cli.client.call(method, path.format(name=name), query)
        except APIError as e:
            _report(e)
            failed.append(name)
            continue
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
    if failed and what:
        sys.stderr.write(f"Error: failed to {what} containers: {', '.join(failed)}\n")
    return 1 if failed else 0


STOP_SPEC = Spec("stop", "orlop stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", [
    flag("-s, --signal", "string", "Signal to send to the container"),
    flag("-t, --timeout", "int", "Seconds to wait before killing the container"),
], min_args=1, aliases="orlop container stop, orlop stop")


@command(STOP_SPEC)
def stop(cli, opts, args):
    query = {"signal": opts.signal, "t": opts.timeout if "timeout" in opts.changed else None}
    return _each(cli, args, "POST", "/containers/{name}/stop", query)


RESTART_SPEC = Spec("restart", "orlop restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", [
    flag("-s, --signal", "string", "Signal to send to the container"),
    flag("-t, --timeout", "int", "Seconds to wait before killing the container"),
], min_args=1, aliases="orlop container restart, orlop restart")


@command(RESTART_SPEC)
def restart(cli, opts, args):
    query = {"signal": opts.signal, "t": opts.timeout if "timeout" in opts.changed else None}
    return _each(cli, args, "POST", "/containers/{name}/restart", query)


KILL_SPEC = Spec("kill", "orlop kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", [
    flag("-s, --signal", "string", "Signal to send to the container"),
], min_args=1, aliases="orlop container kill, orlop kill")


@command(KILL_SPEC)
def kill(cli, opts, args):
    return _each(cli, args, "POST", "/containers/{name}/kill", {"signal": opts.signal or None})


RM_SPEC = Spec("rm", "orlop rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", [
    flag("-f, --force", "bool", "Force the removal of a running container (uses SIGKILL)"),
    flag("-l, --link", "bool", "Remove the specified link"),
    flag("-v, --volumes", "bool", "Remove anonymous volumes associated with the container"),
], min_args=1, aliases="orlop container rm, orlop container remove, orlop rm")


@command(RM_SPEC)
def rm(cli, opts, args):
    query = {"force": opts.force, "link": opts.link, "v": opts.volumes}
    return _each(cli, [a.strip("/") for a in args], "DELETE", "/containers/{name}", query)


PAUSE_SPEC = Spec("pause", "orlop pause CONTAINER [CONTAINER...]", "Pause all processes within one or more "
                  "containers", [], min_args=1, aliases="orlop container pause, orlop pause")


@command(PAUSE_SPEC)
def pause(cli, opts, args):
    return _each(cli, args, "POST", "/containers/{name}/pause", what="pause")


UNPAUSE_SPEC = Spec("unpause", "orlop unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more "
                    "containers", [], min_args=1, aliases="orlop container unpause, orlop unpause")


@command(UNPAUSE_SPEC)
def unpause(cli, opts, args):
    return _each(cli, args, "POST", "/containers/{name}/unpause", what="unpause")


RENAME_SPEC = Spec("rename", "orlop rename CONTAINER NEW_NAME", "Rename a container", [], min_args=2, max_args=2,
                   aliases="orlop container rename, orlop rename")


@command(RENAME_SPEC)
def rename(cli, opts, args):
    old, new = args[0].strip(), args[1].strip()
    if not old or not new:
        raise CommandError("Error: Neither old nor new names may be empty")
    cli.client.call("POST", f"/containers/{old}/rename", {"name": new})
    return 0


WAIT_SPEC = Spec("wait", "orlop wait CONTAINER [CONTAINER...]", "Block until one or more containers stop, then "
                 "print their exit codes", [], min_args=1, aliases="orlop container wait, orlop wait")


@command(WAIT_SPEC)
def wait(cli, opts, args):
    failed = False
    for name in args:
        try:
            result = cli.client.post(f"/containers/{name}/wait") or {}
        except APIError as e:
            _report(e)
            failed = True
            continue
        sys.stdout.write(f"{result.get('StatusCode')}\n")
        sys.stdout.flush()
    return 1 if failed else 0


START_SPEC = Spec("start", "orlop start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", [
    flag("-a, --attach", "bool", "Attach STDOUT/STDERR and forward signals"),
    flag("--detach-keys", "string", "Override the key sequence for detaching a container"),
    flag("-i, --interactive", "bool", "Attach container's STDIN"),
], min_args=1, aliases="orlop container start, orlop start")


@command(START_SPEC)
def start(cli, opts, args):
    if not (opts.attach or opts.interactive):
        return _each(cli, args, "POST", "/containers/{name}/start", what="start")
    if len(args) > 1:
        raise CommandError("you cannot start and attach multiple containers at once")
    return _start_attached(cli, args[0], opts)


def _start_attached(cli, name: str, opts) -> int:
    from orlop.cli.attach import Attachment, attach_query
    from orlop.cli.run import start_error_status

    client = cli.client
    info = client.get(f"/containers/{name}/json")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(opts.interactive and config.get("OpenStdin"))
    if tty and stdin and not terminal.is_terminal(0):
        raise CommandError("the input device is not a TTY")
    cid = info["Id"]
    attachment = Attachment(client, cid, tty=tty, stdin=stdin, detach_keys=opts.detach_keys, sig_proxy=True)
    waiter = None
    try:
        attachment.open(f"/containers/{cid}/attach", attach_query(stdin, True, True, opts.detach_keys))
        auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
        waiter = client.receive(client.send("POST", f"/containers/{cid}/wait",
                                            {"condition": "removed" if auto_remove else "next-exit"}), "POST")
        try:
            client.call("POST", f"/containers/{cid}/start")
        except APIError as e:
            attachment.close()
            raise CommandError(f"Error response from daemon: {e.message}", start_error_status(e.message)) from None
        if attachment.stream() == "detached":
            return 0
        result = waiter.json() or {}
        return int(result.get("StatusCode", 0))
    finally:
        attachment.close()
        if waiter is not None:
            waiter.close()


ATTACH_SPEC = Spec("attach", "orlop attach [OPTIONS] CONTAINER", "Attach local standard input, output, and error "
                   "streams to a running container", [
                       flag("--detach-keys", "string", "Override the key sequence for detaching a container"),
                       flag("--no-stdin", "bool", "Do not attach STDIN"),
                       flag("--sig-proxy", "bool", "Proxy all received signals to the process", True),
                   ], min_args=1, max_args=1, aliases="orlop container attach, orlop attach")


@command(ATTACH_SPEC)
def attach(cli, opts, args):
    from orlop.cli.attach import Attachment, attach_query

    client = cli.client
    info = client.get(f"/containers/{args[0]}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CommandError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CommandError("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise CommandError("You cannot attach to a restarting container, wait until it is running")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not opts.no_stdin
    if tty and stdin and not terminal.is_terminal(0):
        raise CommandError("the input device is not a TTY")
    cid = args[0]  # as typed, like docker
    waiter = client.receive(client.send("POST", f"/containers/{cid}/wait"), "POST")
    attachment = Attachment(client, cid, tty=tty, stdin=stdin, detach_keys=opts.detach_keys,
                            sig_proxy=bool(opts.sig_proxy))
    try:
        attachment.open(f"/containers/{cid}/attach", attach_query(stdin, True, True, opts.detach_keys))
        if attachment.stream() == "detached":
            return 0
        result = waiter.json() or {}
        return int(result.get("StatusCode", 0))
    finally:
        attachment.close()
        waiter.close()


EXEC_SPEC = Spec("exec", "orlop exec [OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running "
                 "container", [
                     flag("-d, --detach", "bool", "Detached mode: run command in the background"),
                     flag("--detach-keys", "string", "Override the key sequence for detaching a container"),
                     flag("-e, --env", "list", "Set environment variables"),
                     flag("--env-file", "list", "Read in a file of environment variables"),
                     flag("-i, --interactive", "bool", "Keep STDIN open even if not attached"),
                     flag("--privileged", "bool", "Give extended privileges to the command"),
                     flag("-t, --tty", "bool", "Allocate a pseudo-TTY"),
                     flag("-u, --user", "string", "Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
                     flag("-w, --workdir", "string", "Working directory inside the container"),
                 ], interspersed=False, min_args=2, aliases="orlop container exec, orlop exec")


@command(EXEC_SPEC)
def exec_(cli, opts, args):
    from orlop.cli.attach import Attachment
    from orlop.cli.containeropts import _env

    client = cli.client
    name, cmd = args[0], args[1:]
    if opts.tty and opts.interactive and not opts.detach and not terminal.is_terminal(0):
        raise CommandError("the input device is not a TTY")
    info = client.get(f"/containers/{name}/json")
    detach = bool(opts.detach)
    console = (terminal.size(1) or (0, 0)) if opts.tty else None
    body = {"User": opts.user or "", "Privileged": bool(opts.privileged), "Tty": bool(opts.tty)}
    if console:
        body["ConsoleSize"] = list(console)  # in Go's field order, as docker sends it with -t
    body.update({"AttachStdin": bool(opts.interactive) and not detach, "AttachStderr": not detach,
                 "AttachStdout": not detach, "Detach": detach, "DetachKeys": opts.detach_keys or "",
                 "Env": _env(opts), "WorkingDir": opts.workdir or "", "Cmd": cmd})
    exec_id = client.post(f"/containers/{name}/exec", body=body)["Id"]
    start_body = {"Detach": detach, "Tty": bool(opts.tty)}
    if console:
        start_body["ConsoleSize"] = list(console)
    if detach:
        client.call("POST", f"/exec/{exec_id}/start", body=start_body)
        return 0
    attachment = Attachment(client, info["Id"], tty=bool(opts.tty), stdin=bool(opts.interactive),
                            detach_keys=opts.detach_keys, sig_proxy=False, exec_id=exec_id)
    try:
        try:
            attachment.open(f"/exec/{exec_id}/start", body=start_body)
        except APIError as e:
            if e.status < 500:
                raise
            # The process could not be started: docker's exit statuses for that (127 not found, else 126).
            from orlop.cli.run import start_error_status

            raise CommandError(f"Error response from daemon: {e.message}",
                               127 if start_error_status(e.message) == 127 else 126) from None
        if attachment.stream() == "detached":
            return 0
    finally:
        attachment.close()
    result = client.get(f"/exec/{exec_id}/json") or {}
    code = result.get("ExitCode")
    return int(code) if code is not None else 0


LOGS_SPEC = Spec("logs", "orlop logs [OPTIONS] CONTAINER", "Fetch the logs of a container", [
    flag("--details", "bool", "Show extra details provided to logs"),
    flag("-f, --follow", "bool", "Follow log output"),
    flag("--since", "string", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" "
         "for 42 minutes)"),
    flag("-n, --tail", "string", "Number of lines to show from the end of the logs", "all"),
    flag("-t, --timestamps", "bool", "Show timestamps"),
    flag("--until", "string", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. "
         "\"42m\" for 42 minutes)"),
], min_args=1, max_args=1, aliases="orlop container logs, orlop logs")


@command(LOGS_SPEC)
def logs(cli, opts, args):
    from orlop.cli.streams import copy_output

    client = cli.client
    info = client.get(f"/containers/{args[0]}/json")
    try:
        since = units.timestamp_argument(opts.since) if opts.since else None
        until = units.timestamp_argument(opts.until) if opts.until else None
    except ValueError as e:
        raise CommandError(str(e)) from None
    query = [("details", opts.details), ("follow", opts.follow), ("since", since), ("stderr", True),
             ("stdout", True), ("tail", opts.tail or "all"), ("timestamps", opts.timestamps), ("until", until)]
    response = client.request("GET", f"/containers/{info['Id']}/logs", query)
    try:
        copy_output(response.chunks(), bool((info.get("Config") or {}).get("Tty")))
    finally:
        response.close()
    return 0


TOP_SPEC = Spec("top", "orlop top CONTAINER [ps OPTIONS]", "Display the running processes of a container", [],
                interspersed=False, min_args=1, aliases="orlop container top, orlop top")


@command(TOP_SPEC)
def top(cli, opts, args):
    from orlop.cli.formatter import tabwrite

    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    result = cli.client.get(f"/containers/{args[0]}/top", query) or {}
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(row) for row in result.get("Processes") or []]
    sys.stdout.write(tabwrite(lines, minwidth=20, padding=3))
    return 0


PRUNE_SPEC = Spec("container prune", "orlop container prune [OPTIONS]", "Remove all stopped containers", [
    flag("--filter", "list", "Provide filter values (e.g. \"until=<timestamp>\")", metavar="filter"),
    flag("-f, --force", "bool", "Do not prompt for confirmation"),
], max_args=0)


def prune_containers(cli, filters: list[str]) -> tuple[list[str], int]:
    from orlop.cli.commands.images import filters_json

    result = cli.client.post("/containers/prune", {"filters": filters_json(filters)}) or {}
    return list(result.get("ContainersDeleted") or []), int(result.get("SpaceReclaimed") or 0)


@command(PRUNE_SPEC)
def prune(cli, opts, args):
    from orlop.cli.commands.images import confirm

    if not opts.force and not confirm("WARNING! This will remove all stopped containers.\n"
                                      "Are you sure you want to continue?"):
        return 0
    removed, reclaimed = prune_containers(cli, opts.filter)
    if removed:
        sys.stdout.write("Deleted Containers:\n" + "".join(c + "\n" for c in removed) + "\n")
    sys.stdout.write(f"Total reclaimed space: {units.human_size(reclaimed)}\n")
    return 0


PORT_SPEC = Spec("port", "orlop port CONTAINER [PRIVATE_PORT[/PROTO]]",
                 "List port mappings or a specific mapping for the container", [],
                 min_args=1, max_args=2, aliases="orlop container port, orlop port")


@command(PORT_SPEC)
def port(cli, opts, args):
    record = cli.client.get(f"/containers/{args[0]}/json")
    ports = (record.get("NetworkSettings") or {}).get("Ports") or {}

    def address(binding: dict) -> str:
        host = binding.get("HostIp") or "0.0.0.0"
        return f"[{host}]:{binding.get('HostPort')}" if ":" in host else f"{host}:{binding.get('HostPort')}"

    if len(args) > 1:
        wanted = args[1] if "/" in args[1] else f"{args[1]}/tcp"
        bindings = ports.get(wanted)
        if not bindings:
            raise CommandError(f"Error: No public port '{wanted}' published for {args[0]}")
        sys.stdout.write("".join(address(b) + "\n" for b in bindings))
        return 0

    def order(key: str):
        number, _, proto = key.partition("/")
        return (int(number) if number.isdigit() else 0, proto)
    for key in sorted(ports, key=order):
        for binding in ports[key] or []:
            sys.stdout.write(f"{key} -> {address(binding)}\n")
    return 0
