"""Pseudo-terminals, and handing a pty master to another process over a unix
socket the way runc's --console-socket does (docs/terminals.md in runc).

The wire format is runc's SendFd/RecvFile: one sendmsg whose payload is a name
(shorter than 4096 bytes) and whose control message is one SCM_RIGHTS with one
fd, so containerd's, podman's (conmon) and runc's own recvtty accept it.

File descriptors are packed with struct, not array: `import array` pulls in
collections (~3 ms), and this runs on the container start-up path."""

from __future__ import annotations

import _socket
import fcntl
import os
import struct
import termios

# <asm-generic/ioctls.h>; termios lacks these three.
TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int)
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int)
TIOCGPTPEER = 0x5441  # _IO('T', 0x41), Linux >= 4.13

MAX_NAME_LEN = 4096  # runc's MaxNameLen: a name must be shorter
_FD_SIZE = struct.calcsize("i")
_EPROTO = 71


def _ioctl(fd: int, request: int, arg: int | bytes, what: str) -> int | bytes:
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as e:
        raise OSError(e.errno, f"ioctl({what}): {e.strerror}") from None


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """A new pty from the devpts instance behind `ptmx`: (master fd, slave path).

    The path is "/dev/pts/N" as seen in the mount namespace `ptmx` belongs to; when
    that may not resolve to the right devpts, use open_slave_via_master instead."""
    try:
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"open {ptmx}: {e.strerror}") from None
    try:
        _ioctl(master, TIOCSPTLCK, struct.pack("i", 0), "TIOCSPTLCK")  # unlockpt(3)
        number = struct.unpack("I", _ioctl(master, TIOCGPTN, bytes(4), "TIOCGPTN"))[0]  # ptsname(3)
    except OSError:
        os.close(master)
        raise
    return master, f"/dev/pts/{number}"


def open_slave_via_master(master: int) -> int:
    """The slave end of `master`, opened through the master itself: no path lookup that
    a container could redirect, whatever devpts is mounted where."""
    # O_NOCTTY: never become our controlling terminal by accident; O_CLOEXEC: never leak.
    return _ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC, "TIOCGPTPEER")


def set_controlling_terminal(slave_fd: int) -> None:
    """Make `slave_fd` the controlling terminal of a new session and this process's
    stdin/stdout/stderr (closing `slave_fd` itself unless it is one of them)."""
    try:
        os.setsid()
    except OSError as e:
        raise OSError(e.errno, f"setsid: {e.strerror}") from None
    _ioctl(slave_fd, termios.TIOCSCTTY, 0, "TIOCSCTTY")
    for fd in (0, 1, 2):
        os.dup2(slave_fd, fd)  # inheritable: these must survive execve
    if slave_fd > 2:
        os.close(slave_fd)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    _ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0), "TIOCSWINSZ")


def get_window_size(fd: int) -> tuple[int, int]:
    """(rows, cols) of the terminal behind `fd`."""
    rows, cols, _, _ = struct.unpack("HHHH", _ioctl(fd, termios.TIOCGWINSZ, bytes(8), "TIOCGWINSZ"))
    return rows, cols


def send_console_fd_on(sock_fd: int, master_fd: int, name: str) -> None:
    """Send `master_fd` over the connected unix socket `sock_fd` (left open): payload
    `name`, the fd in one SCM_RIGHTS message."""
    payload = name.encode()
    if not payload or len(payload) >= MAX_NAME_LEN:
        # Empty: a stream socket sends no message, so the fd would never arrive.
        raise ValueError(f"console name must be 1 to {MAX_NAME_LEN - 1} bytes, got {len(payload)}")
    sock = _socket.socket(fileno=sock_fd)
    try:
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", master_fd))]
        sent = sock.sendmsg([payload], rights)
    except OSError as e:
        raise OSError(e.errno, f"sendmsg: {e.strerror}") from None
    finally:
        sock.detach()
    if sent != len(payload):
        raise OSError(_EPROTO, f"sendmsg: sent {sent} of {len(payload)} bytes of the console name")


def send_console_fd(socket_path: str, master_fd: int, name: str) -> None:
    """Connect to a console socket (e.g. containerd's, podman's) and send the pty master."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(socket_path)
        except OSError as e:
            raise OSError(e.errno, f"connect {socket_path}: {e.strerror}") from None
        send_console_fd_on(sock.fileno(), master_fd, name)
    finally:
        sock.close()


def recv_console_fd(sock) -> tuple[int, str]:
    """Receive (fd, name) sent by send_console_fd or runc; `sock` is a connected socket
    object. The fd comes close-on-exec; anything but exactly one fd is an error."""
    try:
        message, ancillary, flags, _ = sock.recvmsg(MAX_NAME_LEN, _socket.CMSG_SPACE(_FD_SIZE),
                                                    _socket.MSG_CMSG_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"recvmsg: {e.strerror}") from None
    fds = _received_fds(ancillary)
    if len(fds) == 1 and not flags & _socket.MSG_CTRUNC:
        return fds[0], message.decode(errors="surrogateescape")
    for fd in fds:  # installed in our table whether we want them or not
        os.close(fd)
    raise OSError(_EPROTO, f"recvmsg: expected one file descriptor from the console socket, got {len(fds)}"
                           + (" (truncated)" if flags & _socket.MSG_CTRUNC else ""))


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _FD_SIZE
            fds.extend(struct.unpack(f"{usable // _FD_SIZE}i", data[:usable]))
    return fds
