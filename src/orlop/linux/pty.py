"""Pseudo-terminals and handing a pty master to another process over a unix
socket (SCM_RIGHTS), the way runc's --console-socket does.

File descriptors are packed with struct, not array: `import array` pulls in
collections (~3 ms), and this runs on the container start-up path."""

from __future__ import annotations

import _socket
import fcntl
import os
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """(master fd, slave path) from a fresh pty of the devpts instance behind `ptmx`."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    except OSError:
        os.close(master)
        raise
    return master, f"/dev/pts/{number}"


def open_slave_via_master(master: int) -> int:
    """The slave end, found through the master itself (no path lookup that could be redirected)."""
    return fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)


def set_controlling_terminal(slave: int) -> None:
    """Make `slave` this process's controlling terminal and its stdin/stdout/stderr."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_window_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def send_console_fd_on(sock_fd: int, master: int, name: str) -> None:
    """Send `master` over an already connected unix socket: payload `name`, fd in SCM_RIGHTS."""
    sock = _socket.socket(fileno=os.dup(sock_fd))
    try:
        sock.sendmsg([name.encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", master))])
    finally:
        sock.close()


def send_console_fd(socket_path: str, master: int, name: str) -> None:
    """Connect to a console socket (e.g. containerd's, podman's) and send the pty master."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        send_console_fd_on(sock.fileno(), master, name)
    finally:
        sock.close()


def recv_console_fd(sock) -> tuple[int, str]:
    """Receive (fd, name) sent by send_console_fd; `sock` is a connected socket object."""
    message, ancillary, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(4))
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            return struct.unpack("i", data[:4])[0], message.decode(errors="replace")
    raise OSError(71, "console socket: no file descriptor received")
