"""orlop-runtime's command line: runc's commands, flags, output and exit codes.

Engines (containerd, podman, dockerd) drive runc by its command line, so this
mirrors it: global flags first (`--root`, `--log`, `--log-format`, `--debug`,
`--systemd-cgroup`), then the command, its flags, the container id and any
arguments. Go's flag package also accepts `-flag` for `--flag`; so do we.
Options are parsed here by `parse_options`, not argparse or getopt: both import
`re` and gettext (~7-9 ms), a quarter of a container's start.
"""

from __future__ import annotations

import sys

from orlop.runtime.errors import RuntimeFailure
from orlop.runtime.state import DEFAULT_ROOT, default_root

VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"

# command -> (short options as getopt spells them, long options, positional usage)
COMMANDS: dict[str, tuple[str, list[str], str]] = {
    "create": ("b:", ["bundle=", "console-socket=", "pid-file=", "no-pivot", "no-new-keyring",
                      "preserve-fds="], "<container-id>"),
    "run": ("b:d", ["bundle=", "console-socket=", "pid-file=", "no-pivot", "no-new-keyring", "preserve-fds=",
                    "detach", "keep", "no-subreaper"], "<container-id>"),
    "start": ("", [], "<container-id>"),
    "state": ("", [], "<container-id>"),
    "kill": ("a", ["all"], "<container-id> [signal]"),
    "delete": ("f", ["force"], "<container-id>"),
    "list": ("f:q", ["format=", "quiet"], ""),
    "ps": ("f:", ["format="], "<container-id> [ps options]"),
    "exec": ("e:tu:g:p:dc:", ["console-socket=", "cwd=", "env=", "tty", "user=", "additional-gids=", "process=",
                              "detach", "pid-file=", "process-label=", "apparmor=", "no-new-privs", "cap=",
                              "preserve-fds=", "cgroup=", "ignore-paused", "no-subreaper"],
             "<container-id> <command> [args...]"),
    "pause": ("", [], "<container-id>"),
    # runc's flags; cpu-shares is accepted for cpu-share, as crun does (kernel-memory*: ignored, warned about)
    "update": ("r:", ["resources=", "blkio-weight=", "cpu-period=", "cpu-quota=", "cpu-burst=", "cpu-share=",
                      "cpu-shares=", "cpu-rt-period=", "cpu-rt-runtime=", "cpuset-cpus=", "cpuset-mems=", "cpu-idle=",
                      "kernel-memory=", "kernel-memory-tcp=", "memory=", "memory-reservation=", "memory-swap=",
                      "pids-limit=", "l3-cache-schema=", "mem-bw-schema="], "<container-id>"),
    "resume": ("", [], "<container-id>"),
    "spec": ("b:", ["bundle=", "rootless"], ""),
    "features": ("", [], ""),
}
GLOBAL_LONG = ["root=", "log=", "log-format=", "debug", "systemd-cgroup", "criu=", "rootless=", "help", "version"]

USAGE = f"""usage: orlop-runtime [global options] <command> [options] [arguments]

An OCI runtime with runc's command line (version {VERSION}, OCI runtime spec {SPEC_VERSION}).

commands:
  create   create a container from a bundle; its process waits for `start`
  start    start the process of a created container
  run      create and start a container, wait for it and delete it (unless --detach)
  state    print the state of a container as JSON
  kill     send a signal (default SIGTERM) to the container's init, or --all its processes
  delete   delete a stopped container (--force: also a running one)
  list     list containers (--format table|json, --quiet)
  ps       show the processes of a container (--format table|json)
  exec     run a new process in a running container
  pause    freeze all processes of a container
  resume   thaw a paused container
  update   change the resource limits of a container (runc's flags, or -r resources.json|-)
  spec     write a default config.json (--rootless for an unprivileged user)
  features print the features this runtime supports, as JSON

global options:
  --root <dir>         state directory (default {DEFAULT_ROOT}; $XDG_RUNTIME_DIR/orlop-runtime if not root)
  --log <file>         append errors and debug messages to this file
  --log-format <fmt>   text or json
  --debug              log debug messages
  --systemd-cgroup     treat cgroupsPath as systemd's slice:prefix:name
  --version            print the version
"""


class Globals:
    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup")

    def __init__(self) -> None:
        self.root = default_root()
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False


class UsageError(RuntimeFailure):
    pass


def parse_options(args: list[str], short: str, longs: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """getopt's contract (stop at the first positional argument; `--name=value`,
    `--name value`, `-x value`, `-xvalue`, bundled short flags), without its imports.

    `short` is getopt's letters ("b:d": -b takes a value), `longs` its names ("bundle=").
    """
    takes_value = {name.rstrip("="): name.endswith("=") for name in longs}
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return opts, args[i + 1:]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in takes_value:
                raise UsageError(f"option --{name} not recognized")
            if takes_value[name] and not eq:
                i += 1
                if i == len(args):
                    raise UsageError(f"option --{name} requires argument")
                value = args[i]
            elif not takes_value[name] and eq:
                raise UsageError(f"option --{name} must not have an argument")
            opts.append(("--" + name, value))
        elif arg.startswith("-") and arg != "-":
            letters = arg[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                where = short.find(letter)
                if where < 0 or letter == ":":
                    raise UsageError(f"option -{letter} not recognized")
                if short[where + 1:where + 2] == ":":
                    if not letters:
                        i += 1
                        if i == len(args):
                            raise UsageError(f"option -{letter} requires argument")
                        letters = args[i]
                    opts.append(("-" + letter, letters))
                    letters = ""
                else:
                    opts.append(("-" + letter, ""))
        else:
            break
        i += 1
    return opts, args[i:]


def _go_style(args: list[str], longs: list[str]) -> list[str]:
    """Accept Go's `-bundle x` / `-bundle=x` for `--bundle`."""
    names = {name.rstrip("=") for name in longs}
    out = []
    for arg in args:
        if arg == "--":
            out.append(arg)
            break
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[1:].split("=", 1)[0] in names:
            arg = "-" + arg
        out.append(arg)
        if not arg.startswith("-"):
            break
    return out + args[len(out):]


def parse_globals(argv: list[str]) -> tuple[Globals, list[str]]:
    g = Globals()
    opts, rest = parse_options(_go_style(argv, GLOBAL_LONG), "hv", GLOBAL_LONG)
    for name, value in opts:
        if name in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        if name in ("-v", "--version"):
            sys.stdout.write(f"orlop-runtime version {VERSION}\nspec: {SPEC_VERSION}\n")
            raise SystemExit(0)
        if name == "--root":
            g.root = value
        elif name == "--log":
            g.log = value
        elif name == "--log-format":
            g.log_format = value
        elif name == "--debug":
            g.debug = True
        elif name == "--systemd-cgroup":
            g.systemd_cgroup = True
    return g, rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    g = Globals()
    try:
        g, rest = parse_globals(argv)
        if not rest:
            sys.stderr.write(USAGE)
            return 1
        command, args = rest[0], rest[1:]
        if command not in COMMANDS:
            raise RuntimeFailure(f"no such command: {command!r} (see `orlop-runtime --help`)")
        short, longs, usage = COMMANDS[command]
        try:
            opts, positional = parse_options(_go_style(args, longs), short + "h", longs + ["help"])
        except UsageError as e:
            raise RuntimeFailure(f"{command}: {e}") from None
        options: dict[str, list[str]] = {}
        for name, value in opts:
            if name in ("-h", "--help"):
                sys.stdout.write(f"usage: orlop-runtime {command} [options] {usage}\n")
                return 0
            options.setdefault(_long_name(name, short, longs), []).append(value)
        from orlop.runtime import commands

        if g.debug:
            from orlop.runtime.log import log_debug

            log_debug(g.log, g.log_format, f"{command} {' '.join(args)} (root {g.root})")
        return getattr(commands, "cmd_" + command)(g, options, positional)
    except RuntimeFailure as e:
        return _fail(g, str(e))
    except OSError as e:
        from orlop.runtime.init import describe

        return _fail(g, describe(e))
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The launcher's entry point: main(), then exit without the interpreter's
    teardown (module and GC finalisation cost ~4 ms; nothing here needs it)."""
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _long_name(flag: str, short: str, longs: list[str]) -> str:
    """Map '-b' to 'bundle' through the option tables (short letters follow the long list's
    order of first letters, as in runc: -b bundle, -d detach, -f force/format...)."""
    if flag.startswith("--"):
        return flag[2:]
    letter = flag[1]
    aliases = {"b": "bundle", "d": "detach", "a": "all", "f": "force", "q": "quiet", "e": "env", "t": "tty",
               "u": "user", "g": "additional-gids", "p": "process", "c": "cap", "r": "resources"}
    name = aliases[letter]
    if letter == "f" and "format=" in longs:
        name = "format"
    return name


def _fail(g: Globals, message: str) -> int:
    sys.stderr.write(f"orlop-runtime: {message}\n")
    if g.log:
        from orlop.runtime.log import log_error

        log_error(g.log, g.log_format, message)
    return 1
