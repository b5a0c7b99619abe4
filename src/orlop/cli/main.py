"""`orlop`: global options, then one command, whose module is imported only then.

Exit statuses are docker's: 0, 1 for an error (the daemon's answer is printed as
`Error response from daemon: …`), 125 for a wrong flag, and run's own (the container's
status, 125/126/127).
"""

from __future__ import annotations

import os
import sys

from orlop.cli.errors import CommandError

# command -> (module under orlop.cli, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"), "create": ("run", "create"),
    "start": ("commands.containers", "start"), "stop": ("commands.containers", "stop"),
    "restart": ("commands.containers", "restart"), "kill": ("commands.containers", "kill"),
    "rm": ("commands.containers", "rm"), "pause": ("commands.containers", "pause"),
    "unpause": ("commands.containers", "unpause"), "rename": ("commands.containers", "rename"),
    "wait": ("commands.containers", "wait"), "attach": ("commands.containers", "attach"),
    "top": ("commands.containers", "top"), "exec": ("commands.containers", "exec_"),
    "update": ("commands.update", "update"),
    "logs": ("commands.containers", "logs"), "ps": ("commands.ps", "ps"), "stats": ("commands.ps", "stats"),
    "images": ("commands.images", "images"), "rmi": ("commands.images", "rmi"),
    "tag": ("commands.images", "tag"), "save": ("commands.images", "save"), "load": ("commands.images", "load"),
    "pull": ("commands.images", "pull"), "push": ("commands.images", "push"),
    "history": ("commands.images", "history"), "build": ("commands.build", "build"),
    "search": ("commands.images", "search"), "import": ("commands.images", "import_"),
    "port": ("commands.containers", "port"),
    "login": ("commands.registry", "login"), "logout": ("commands.registry", "logout"),
    "info": ("commands.system", "info"), "version": ("commands.system", "version"),
    "events": ("commands.system", "events"), "inspect": ("commands.system", "inspect"),
    "explain": ("commands.explain", "explain"),
    "cp": ("commands.cp", "cp"), "diff": ("commands.filesystem", "diff"),
    "export": ("commands.filesystem", "export"), "commit": ("commands.filesystem", "commit"),
}

# management commands: `orlop container ls` -> ps, …
MANAGEMENT: dict[str, dict[str, tuple[str, str]]] = {
    "container": {
        **{name: COMMANDS[name] for name in ("run", "create", "start", "stop", "restart", "kill", "rm", "pause",
                                             "unpause", "rename", "wait", "attach", "top", "exec", "logs",
                                             "stats", "update", "cp", "diff", "export", "commit", "port")},
        "ls": COMMANDS["ps"], "list": COMMANDS["ps"], "ps": COMMANDS["ps"], "remove": COMMANDS["rm"],
        "inspect": ("commands.system", "container_inspect"), "prune": ("commands.containers", "prune"),
    },
    "image": {
        "ls": COMMANDS["images"], "list": COMMANDS["images"], "rm": COMMANDS["rmi"], "remove": COMMANDS["rmi"],
        **{name: COMMANDS[name] for name in ("pull", "push", "tag", "save", "load", "history", "build", "import")},
        "inspect": ("commands.system", "image_inspect"), "prune": ("commands.images", "prune"),
    },
    "builder": {"prune": ("commands.system", "builder_prune"), "build": ("commands.build", "build")},
    "volume": {name: ("commands.volumes", name) for name in ("create", "ls", "inspect", "rm", "prune")} | {
        "list": ("commands.volumes", "ls"), "remove": ("commands.volumes", "rm")},
    "network": {name: ("commands.networks", name) for name in ("create", "ls", "inspect", "rm", "connect",
                                                                "disconnect", "prune")} | {
        "list": ("commands.networks", "ls"), "remove": ("commands.networks", "rm")},
    "system": {
        "info": COMMANDS["info"], "events": COMMANDS["events"], "prune": ("commands.system", "prune"),
        "df": ("commands.disk_usage", "df"),
    },
}

SUMMARIES = {
    "run": "Create and run a new container from an image", "exec": "Execute a command in a running container",
    "ps": "List containers", "build": "Build an image from a Dockerfile",
    "pull": "Download an image from a registry", "push": "Upload an image to a registry",
    "images": "List images", "login": "Authenticate to a registry", "logout": "Log out from a registry",
    "version": "Show the orlop version information", "info": "Display system-wide information",
    "attach": "Attach local standard input, output, and error streams to a running container",
    "create": "Create a new container", "events": "Get real time events from the server",
    "inspect": "Return low-level information on orlop objects", "kill": "Kill one or more running containers",
    "load": "Load an image from a tar archive or STDIN", "logs": "Fetch the logs of a container",
    "pause": "Pause all processes within one or more containers", "rename": "Rename a container",
    "restart": "Restart one or more containers", "rm": "Remove one or more containers",
    "rmi": "Remove one or more images", "save": "Save one or more images to a tar archive (streamed to STDOUT by "
    "default)", "start": "Start one or more stopped containers", "stats": "Display a live stream of container(s) "
    "resource usage statistics", "stop": "Stop one or more running containers",
    "tag": "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", "top": "Display the running processes of a "
    "container", "unpause": "Unpause all processes within one or more containers",
    "wait": "Block until one or more containers stop, then print their exit codes",
    "update": "Update configuration of one or more containers",
    "history": "Show the history of an image", "search": "Search Docker Hub for images",
    "import": "Import the contents from a tarball to create a filesystem image",
    "port": "List port mappings or a specific mapping for the container",
    "explain": "Show how a container is isolated, or what an image's layers hold",
    "cp": "Copy files/folders between a container and the local filesystem",
    "diff": "Inspect changes to files or directories on a container's filesystem",
    "export": "Export a container's filesystem as a tar archive",
    "commit": "Create a new image from a container's changes",
}


class Cli:
    """What every command gets: the daemon's address and a client made on first use."""

    def __init__(self, host: str, config_dir: str | None) -> None:
        self.host = host
        self.config_dir = config_dir
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from orlop.cli.client import Client

            self._client = Client(self.host)
        return self._client


def default_host() -> str:
    host = os.environ.get("ORLOP_HOST")
    if host:
        return host
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        return docker_host
    from orlop.cli.client import DEFAULT_HOST

    return DEFAULT_HOST


def usage() -> str:
    lines = ["", "Usage:  orlop [OPTIONS] COMMAND", "", "A Docker-compatible container engine", "",
             "Common Commands:"]
    common = ("run", "exec", "ps", "images", "pull", "push", "login", "logout", "version", "info")
    lines += [f"  {name.ljust(11)} {SUMMARIES[name]}" for name in common]
    lines += ["", "Management Commands:", "  container   Manage containers", "  image       Manage images",
              "  builder     Manage builds", "  network     Manage networks", "  system      Manage orlop",
              "  volume      Manage volumes", "",
              "Commands:"]
    lines += [f"  {name.ljust(11)} {SUMMARIES[name]}" for name in sorted(SUMMARIES) if name not in common]
    lines += ["", "Global Options:",
              "      --config string   Location of client config files (default \"~/.docker\")",
              "  -H, --host string     Daemon socket to connect to (default $ORLOP_HOST, a unix:// $DOCKER_HOST, "
              "or unix:///run/orlop/orlop.sock)",
              "  -D, --debug           Enable debug mode",
              "  -l, --log-level string  Set the logging level (accepted, unused)",
              "  -v, --version         Print version information and quit",
              "", "Run 'orlop COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def _err(text: str) -> None:
    try:
        os.write(2, (text if text.endswith("\n") else text + "\n").encode())
    except OSError:
        pass


def main(argv: list[str]) -> int:
    host = None
    config_dir = None
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        arg = argv[i]
        name, eq, value = arg.partition("=")
        i += 1
        if name in ("-H", "--host", "--config", "-l", "--log-level", "-c", "--context"):
            if not eq:
                if i >= len(argv):
                    _err(f"flag needs an argument: {name}")
                    return 125
                value = argv[i]
                i += 1
            if name in ("-H", "--host"):
                host = value
            elif name == "--config":
                config_dir = value
        elif name in ("-D", "--debug", "--tls", "--tlsverify"):
            continue
        elif name in ("-v", "--version"):
            from orlop import __version__

            sys.stdout.write(f"orlop version {__version__}\n")
            return 0
        elif name in ("-h", "--help"):
            sys.stdout.write(usage())
            return 0
        elif arg.startswith("-H") and len(arg) > 2:
            host = arg[2:]
        else:
            _err(f"unknown flag: {arg}\nSee 'orlop --help'.")
            return 125
    args = argv[i:]
    if not args or args[0] == "help":
        if len(args) > 1:
            return main([args[1], "--help"])
        sys.stdout.write(usage())
        return 0
    command, rest = args[0], args[1:]
    target = COMMANDS.get(command)
    if target is None and command in MANAGEMENT:
        if not rest or rest[0] in ("--help", "-h", "help"):
            sys.stdout.write(_management_usage(command))
            return 0
        target = MANAGEMENT[command].get(rest[0])
        if target is None:
            _err(f"orlop: unknown command: orlop {command} {rest[0]}\n\nRun 'orlop {command} --help' for more "
                 "information")
            return 1
        command, rest = rest[0], rest[1:]
    if target is None:
        _err(f"orlop: unknown command: orlop {command}\n\nRun 'orlop --help' for more information")
        return 1
    if config_dir:
        os.environ["DOCKER_CONFIG"] = config_dir
    cli = Cli(host or default_host(), config_dir)
    return _dispatch(cli, target, rest)


def _management_usage(group: str) -> str:
    lines = ["", f"Usage:  orlop {group} COMMAND", "", f"Manage {group}s", "", "Commands:"]
    for name in sorted(MANAGEMENT[group]):
        lines.append(f"  {name}")
    lines += ["", f"Run 'orlop {group} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def _dispatch(cli: Cli, target: tuple[str, str], argv: list[str]) -> int:
    from orlop.cli.client import APIError, ConnectError
    from orlop.cli.flags import HelpRequested, UsageError

    module_name, function_name = target
    function = getattr(__import__("orlop.cli." + module_name, fromlist=[function_name]), function_name)
    try:
        return function(cli, argv) or 0
    except HelpRequested:
        spec = getattr(function, "spec", None)
        sys.stdout.write(spec.help_text() if spec else usage())
        return 0
    except UsageError as e:
        spec = getattr(function, "spec", None)
        name = spec.name if spec else ""
        text = str(e)
        if spec:
            text += f"\n\nUsage:  {spec.usage}\n\n{e.hint} 'orlop {name} --help' for more information"
        _err(text)
        return e.status
    except APIError as e:
        _err(f"Error response from daemon: {e.message}")
        return 1
    except (ConnectError, CommandError) as e:
        _err(str(e))
        return getattr(e, "status", 1)


def entry() -> None:
    try:
        code = main(sys.argv[1:])
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        try:
            sys.stdout = None  # nothing left to flush into a closed pipe
        finally:
            code = 0
    sys.exit(code)
