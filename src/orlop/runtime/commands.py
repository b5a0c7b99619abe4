"""One function per orlop-runtime command: parse what cli.py collected, call the
runtime library, print what runc prints."""

from __future__ import annotations

import os
import sys

from orlop import fastjson
from orlop.runtime import container
from orlop.runtime.errors import RuntimeFailure
from orlop.runtime.state import ContainerState, list_ids, validate_id

Options = dict[str, list[str]]


def _one(options: Options, name: str, default: str | None = None) -> str | None:
    values = options.get(name)
    return values[-1] if values else default


def _id(positional: list[str], command: str) -> str:
    if not positional:
        raise RuntimeFailure(f'"{command}" requires a container id')
    return positional[0]


def _int_option(options: Options, name: str) -> int:
    value = _one(options, name, "0")
    try:
        return int(value)
    except ValueError:
        raise RuntimeFailure(f"--{name}: expected a number, got {value!r}") from None


def _create_options(g, options: Options):
    from orlop.runtime.create import CreateOptions

    return CreateOptions(pid_file=_one(options, "pid-file"), console_socket=_one(options, "console-socket"),
                         no_pivot="no-pivot" in options, preserve_fds=_int_option(options, "preserve-fds"),
                         systemd_cgroup=g.systemd_cgroup)


def cmd_create(g, options: Options, positional: list[str]) -> int:
    from orlop.runtime.create import create

    create(g.root, _id(positional, "create"), _one(options, "bundle", "."), _create_options(g, options))
    return 0


def cmd_run(g, options: Options, positional: list[str]) -> int:
    from orlop.runtime.run import run

    return run(g.root, _id(positional, "run"), _one(options, "bundle", "."), _create_options(g, options),
               detach="detach" in options, keep="keep" in options, subreaper="no-subreaper" not in options)


def cmd_start(g, options: Options, positional: list[str]) -> int:
    container.start(ContainerState.load(g.root, _id(positional, "start")))
    return 0


def cmd_state(g, options: Options, positional: list[str]) -> int:
    state = ContainerState.load(g.root, _id(positional, "state"))
    sys.stdout.write(fastjson.dumps(state.oci_state(container.status(state)), indent=2) + "\n")
    return 0


def cmd_kill(g, options: Options, positional: list[str]) -> int:
    from orlop.runtime.signals import parse_signal

    state = ContainerState.load(g.root, _id(positional, "kill"))
    try:
        sig = parse_signal(positional[1] if len(positional) > 1 else "SIGTERM")
    except ValueError as e:
        raise RuntimeFailure(str(e)) from None
    container.kill(state, sig, all_processes="all" in options)
    return 0


def cmd_delete(g, options: Options, positional: list[str]) -> int:
    container_id = _id(positional, "delete")
    try:
        state = ContainerState.load(g.root, container_id)
    except RuntimeFailure:
        if "force" not in options:
            raise
        # runc: delete --force of a missing container succeeds. A directory without a
        # readable state.json is what a create killed half-way leaves: remove it.
        import shutil

        validate_id(container_id)
        shutil.rmtree(os.path.join(g.root, container_id), ignore_errors=True)
        return 0
    container.delete(state, force="force" in options)
    return 0


def cmd_pause(g, options: Options, positional: list[str]) -> int:
    container.pause(ContainerState.load(g.root, _id(positional, "pause")))
    return 0


def cmd_resume(g, options: Options, positional: list[str]) -> int:
    container.resume(ContainerState.load(g.root, _id(positional, "resume")))
    return 0


def cmd_update(g, options: Options, positional: list[str]) -> int:
    from orlop.runtime.update_resources import UpdateError, delta_from_options

    if len(positional) != 1:
        raise RuntimeFailure(f'"update" requires exactly 1 argument(s), got {len(positional)}: <container-id>')
    state = ContainerState.load(g.root, positional[0])
    try:
        delta, warnings = delta_from_options(options, _read_resources)
    except UpdateError as e:
        raise RuntimeFailure(str(e)) from None
    if warnings:
        from orlop.runtime.log import log_warning

        for warning in warnings:
            log_warning(g.log, g.log_format, warning)
    container.update(state, delta)
    return 0


def _read_resources(path: str):
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
        return fastjson.loads(data)
    except OSError as e:
        raise RuntimeFailure(f"--resources {path}: {e.strerror}") from None
    except ValueError as e:
        raise RuntimeFailure(f"--resources {path}: not valid JSON: {e}") from None


def cmd_list(g, options: Options, positional: list[str]) -> int:
    rows = []
    for container_id in list_ids(g.root):
        try:
            state = ContainerState.load(g.root, container_id)
        except RuntimeFailure:
            continue  # removed meanwhile, or half-written by a crash
        entry = state.oci_state(container.status(state))
        entry["owner"] = _owner(state.dir)
        rows.append(entry)
    if "quiet" in options:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif _one(options, "format", "table") == "json":
        sys.stdout.write(fastjson.dumps(rows) + "\n")
    else:
        table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        table += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]] for r in rows]
        sys.stdout.write(_tabulate(table))
    return 0


def _owner(path: str) -> str:
    import pwd

    uid = os.stat(path).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _tabulate(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in rows)


def cmd_ps(g, options: Options, positional: list[str]) -> int:
    state = ContainerState.load(g.root, _id(positional, "ps"))
    pids = container.pids(state)
    if _one(options, "format", "table") == "json":
        sys.stdout.write(fastjson.dumps(pids) + "\n")
        return 0
    import subprocess

    ps_args = positional[1:] or ["-ef"]
    output = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout.splitlines()
    header = output[0].split()
    if "PID" not in header:
        raise RuntimeFailure("ps: the output of ps has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(output[0] + "\n")
    for line in output[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            sys.stdout.write(line + "\n")
    return 0


def cmd_exec(g, options: Options, positional: list[str]) -> int:
    from orlop.runtime.run import exec_command

    state = ContainerState.load(g.root, _id(positional, "exec"))
    return exec_command(state, options, positional[1:])


def cmd_spec(g, options: Options, positional: list[str]) -> int:
    from orlop.oci.default_spec import default_spec

    path = os.path.join(_one(options, "bundle", "."), "config.json")
    if os.path.exists(path):
        raise RuntimeFailure(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        f.write(fastjson.dumps(default_spec(rootless="rootless" in options), indent=2) + "\n")
    return 0


def cmd_features(g, options: Options, positional: list[str]) -> int:
    from orlop.linux.caps import CAP_NAMES
    from orlop.oci.features import features
    from orlop.runtime.cli import VERSION

    sys.stdout.write(fastjson.dumps(features(VERSION, sorted(CAP_NAMES, key=CAP_NAMES.get)), indent=2) + "\n")
    return 0
