"""The messages between orlop-runtime and a container's init while it is set up.

The runtime forks the init; both ends share one SOCK_SEQPACKET socketpair, so a
message is one datagram of JSON: {"type": ..., other fields}. The ladder:

    runtime (parent)                            init (child)
    ----------------                            ------------
    fork                                        join the v1 cgroups (write 0 to `tasks`)
    write the child's pid to its cgroup v2      meanwhile: unshare, mounts...
      directory's cgroup.procs, if it has one
                                      --> joined      before the child unshares its cgroup ns,
                                                      mounts cgroupfs, asks for hooks or execs
                                      <-- userns      unshared a user ns (only with one)
    write uid_map/gid_map             --> continue
                                      <-- pid {pid}   the intermediate forked the init (userns only)
                                      <-- hooks       namespaces made (only with createRuntime/prestart hooks)
    run createRuntime/prestart hooks  --> continue
                                      <-- ready       all set up; the init now blocks on exec.fifo
    write state.json, return from create
                                      <-- error {message}   at any point, instead of the above

Joining a cgroup through cgroup.procs can take 5-20 ms (the kernel waits for an
RCU grace period), so the parent does it while the child works; moving the
current thread through a v1 `tasks` file skips that wait.
EOF on the socket before `ready` means the init died; the parent reports it.
For `exec` the child sends `ready` right before execve: the close-on-exec socket
then reads EOF, which tells the parent the exec succeeded.
"""

from __future__ import annotations

import _socket

from orlop import fastjson

USERNS = "userns"
PID = "pid"
JOINED = "joined"
HOOKS = "hooks"
READY = "ready"
ERROR = "error"
CONTINUE = "continue"


class InitError(RuntimeError):
    """The container's init reported a failure while it was being set up."""


def channel() -> tuple[_socket.socket, _socket.socket]:
    """(parent end, child end); both close-on-exec."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send(sock: _socket.socket, kind: str, **fields) -> None:
    """Send a message; if the other side is gone, raise InitError with its last words."""
    fields["type"] = kind
    try:
        sock.send(fastjson.dumps(fields).encode())
    except (BrokenPipeError, ConnectionResetError):
        last = recv(sock)
        if last and last.get("type") == ERROR:
            raise InitError(last.get("message", "unknown error")) from None
        raise InitError("container init exited before it was set up") from None


def recv(sock: _socket.socket) -> dict | None:
    """The next message, or None at EOF (the other side exited or exec'd)."""
    try:
        raw = sock.recv(65536)
    except ConnectionResetError:
        # The child exited before reading what we sent it; the kernel reports that once,
        # ahead of the messages the child sent before exiting (its error): read on.
        try:
            raw = sock.recv(65536)
        except ConnectionResetError:
            raw = b""
    return fastjson.loads(raw) if raw else None


def expect(sock: _socket.socket, kind: str) -> dict:
    """Wait for a message of `kind`; an `error` message or EOF raises InitError."""
    message = recv(sock)
    if message is None:
        raise InitError("container init exited before it was set up")
    if message["type"] == ERROR:
        raise InitError(message.get("message", "unknown error"))
    if message["type"] != kind:
        raise InitError(f"container init sent {message['type']!r}, expected {kind!r}")
    return message
