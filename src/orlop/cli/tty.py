"""The user's terminal: size, raw mode (always restored), detach keys, and signals
delivered as bytes on a pipe (so one select loop sees them beside the streams)."""

from __future__ import annotations

import os

SIGNAL_NAMES = {1: "HUP", 2: "INT", 3: "QUIT", 10: "USR1", 12: "USR2", 14: "ALRM", 15: "TERM", 28: "WINCH"}
SIGWINCH = 28
PROXIED_SIGNALS = (1, 2, 3, 10, 12, 15)  # what an attached non-TTY client forwards, as docker's sig-proxy
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def size(fd: int = 1) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on `fd`, None when it is not one."""
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return rows, columns


class RawMode:
    """`with RawMode(0):` puts the terminal on fd in raw mode (as cfmakeraw) and restores
    its settings however the block ends."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved = None

    def __enter__(self) -> RawMode:
        import termios
        import tty

        try:
            self.saved = termios.tcgetattr(self.fd)
        except termios.error:
            return self
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
            except termios.error:
                pass
            self.saved = None


def detach_key_bytes(keys: str) -> bytes:
    """docker's term.ToBytes: "ctrl-p,ctrl-q" -> b"\\x10\\x11"; "a,ctrl-[" …"""
    out = bytearray()
    for key in keys.split(","):
        key = key.strip()
        if key.lower().startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[c])
            else:
                raise ValueError(f"invalid detach key {key!r}")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"invalid detach keys {keys!r}: give keys like ctrl-p,ctrl-q or a single character")
    return bytes(out)


class EscapeDetector:
    """Watches what the user types for the detach sequence (docker's term.EscapeProxy):
    bytes that begin the sequence are held back until it is complete or broken."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += self.keys[:self.matched]
                self.matched = 0
                if byte == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(byte)
        return bytes(out), False


class SignalPipe:
    """Catch `signals` and report them through a non-blocking pipe (signal.set_wakeup_fd)."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        import _signal

        self._signal = _signal
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.old_wakeup = _signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        self.old_handlers = {}
        for signum in signals:
            self.old_handlers[signum] = _signal.signal(signum, _noop)

    def read(self) -> list[int]:
        try:
            return list(os.read(self.r, 256))
        except BlockingIOError:
            return []

    def close(self) -> None:
        for signum, handler in self.old_handlers.items():
            self._signal.signal(signum, handler)
        self._signal.set_wakeup_fd(self.old_wakeup)
        os.close(self.r)
        os.close(self.w)


def _noop(signum, frame) -> None:
    pass
