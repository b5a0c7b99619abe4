"""Foreground commands: `run` and `exec` without --detach wait for the process,
forward signals to it and return its exit status (128 + signal when killed).

With a terminal and no --console-socket the runtime itself holds the pty
master and copies it to and from its own stdio, as runc does.
"""

from __future__ import annotations

import _signal
import os

from orlop.linux import syscalls as sc
from orlop.runtime import container
from orlop.runtime.create import CreateOptions, create
from orlop.runtime.errors import RuntimeFailure
from orlop.runtime.signals import wait_status_to_exit_code
from orlop.runtime.state import ContainerState, write_atomic

# What a foreground runtime passes on to the container (runc forwards all but SIGCHLD).
_FORWARDED = (1, 2, 3, 10, 12, 14, 15, 20, 21, 22, 23, 28)


def run(root: str, container_id: str, bundle: str, options: CreateOptions, *, detach: bool, keep: bool,
        subreaper: bool) -> int:
    if subreaper and not detach:
        sc.set_child_subreaper()  # with a user namespace the init is our grandchild
    options.own_console = not detach and not options.console_socket
    state = create(root, container_id, bundle, options)
    console = _ConsoleReceiver(options.console_receiver) if options.console_receiver else None
    try:
        if console:
            console.receive()
        container.start(state)
    except BaseException:
        container.delete(state, force=True)
        raise
    if detach:
        return 0
    try:
        return _wait(state.init_process_pid, console)
    finally:
        if not keep:
            container.delete(ContainerState.load(root, container_id), force=True)


class _ConsoleReceiver:
    """Our end of a socketpair standing in for --console-socket: the init sends the pty master here."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.master: int | None = None

    def receive(self) -> None:
        from orlop.linux import pty

        self.master, _ = pty.recv_console_fd(self.sock)
        self.sock.close()


def _wait(pid: int, console: _ConsoleReceiver | None) -> int:
    """Forward signals to `pid` until it exits; reap any reparented orphans meanwhile."""
    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        _signal.signal(sig, forward)
    if console and console.master is not None:
        from orlop.runtime.tty_proxy import proxy

        proxy(console.master, pid)
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # lost track of it: should not happen with the subreaper set
        if reaped == pid:
            return wait_status_to_exit_code(status)


def exec_command(state: ContainerState, options: dict[str, list[str]], args: list[str]) -> int:
    from orlop.runtime.exec import build_process, exec_process

    def one(name: str) -> str | None:
        return options[name][-1] if name in options else None

    spec = build_process(state, one("process"), args, options.get("env", []), one("cwd"), one("user"),
                         "tty" in options, options.get("cap", []), "no-new-privs" in options)
    if "additional-gids" in options:
        spec.setdefault("user", {})["additionalGids"] = [int(g) for g in options["additional-gids"]]
    detach = "detach" in options
    console_socket = one("console-socket")
    console = None
    console_fd = None
    if spec.get("terminal"):
        if console_socket:
            from orlop.runtime.create import _connect_unix

            console_fd = _connect_unix(console_socket)
        elif detach:
            raise RuntimeFailure("cannot allocate tty if runc will detach without setting console socket")
        else:
            import _socket

            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            console = _ConsoleReceiver(ours)
            console_fd = theirs.detach()
    if not detach and "no-subreaper" not in options:
        sc.set_child_subreaper()
    try:
        pid = exec_process(state, spec, console_fd=console_fd,
                           preserve_fds=int(one("preserve-fds") or 0))
    finally:
        if console_fd is not None:
            os.close(console_fd)  # the child has its copy
    if console:
        console.receive()
    if one("pid-file"):
        write_atomic(os.path.abspath(one("pid-file")), str(pid).encode(), 0o644)
    if detach:
        return 0
    return _wait(pid, console)
