"""Moving a container's streams: stdcopy frames to stdout/stderr, and the hijacked
connection of attach / exec start joined to the user's stdin, stdout and stderr in one
select loop (with signals, terminal resizes and the detach keys)."""

from __future__ import annotations

import os

from orlop.cli.errors import CommandError


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[written:]


class Demux:
    """docker's stdcopy: frames of [stream type, 0, 0, 0, size (uint32 big-endian)] + payload;
    type 0 (stdin) and 1 go to stdout, 2 to stderr, 3 is an error from the daemon."""

    def __init__(self, stdout: int = 1, stderr: int = 2) -> None:
        self.buffer = bytearray()
        self.targets = {0: stdout, 1: stdout, 2: stderr}

    def feed(self, data: bytes) -> None:
        self.buffer += data
        buffer = self.buffer
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            kind = buffer[0]
            payload = bytes(buffer[8:8 + size])
            del buffer[:8 + size]
            target = self.targets.get(kind)
            if target is not None:
                write_all(target, payload)
            elif kind == 3:
                raise CommandError(f"error from daemon in stream: {payload.decode(errors='replace')}")
            else:
                raise CommandError(f"Unrecognized input header: {kind}")


def save_archive(response, output: str | None, failure: str) -> None:
    """A tar the daemon streams (save, export): to the file `output`, written beside it
    and renamed into place only when whole (a failed download leaves nothing), or to
    stdout (the caller has refused a terminal before asking the daemon)."""
    import sys

    if not output:
        sys.stdout.flush()
        for chunk in response.chunks():
            write_all(1, chunk)
        return
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)), f".orlop-{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in response.chunks():
                f.write(chunk)
        os.rename(tmp, output)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CommandError(f"{failure}: {e.strerror}: {output}") from None


def copy_output(chunks, tty: bool) -> None:
    """A logs body: raw for a TTY container, else demultiplexed."""
    import sys

    sys.stdout.flush()
    if tty:
        for data in chunks:
            write_all(1, data)
        return
    demux = Demux()
    for data in chunks:
        demux.feed(data)


class Session:
    """One hijacked connection. run() returns "eof" when the daemon closed it (the process
    ended) or "detached" when the user typed the detach keys."""

    def __init__(self, sock, initial: bytes, *, tty: bool, stdin: bool, detach_keys: bytes | None = None,
                 signals=None, on_signal=None) -> None:
        self.sock = sock
        self.initial = initial
        self.tty = tty
        self.stdin = stdin
        self.detector = None
        if detach_keys:
            from orlop.cli.tty import EscapeDetector

            self.detector = EscapeDetector(detach_keys)
        self.signals = signals
        self.on_signal = on_signal

    def _output(self, demux: Demux | None, data: bytes) -> None:
        if demux is None:
            write_all(1, data)
        else:
            demux.feed(data)

    def run(self) -> str:
        import select
        import sys

        sys.stdout.flush()
        demux = None if self.tty else Demux()
        if self.initial:
            self._output(demux, self.initial)
        sock_fd = self.sock.fileno()
        watched = [sock_fd]
        if self.stdin:
            watched.append(0)
        if self.signals is not None:
            watched.append(self.signals.r)
        while True:
            ready, _, _ = select.select(watched, [], [])
            if self.signals is not None and self.signals.r in ready:
                for signum in self.signals.read():
                    if self.on_signal:
                        self.on_signal(signum)
            if sock_fd in ready:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return "eof"
                self._output(demux, data)
            if 0 in ready and 0 in watched:
                try:
                    data = os.read(0, 32768)
                except OSError:
                    data = b""
                detached = False
                if data and self.detector is not None:
                    data, detached = self.detector.feed(data)
                if data:
                    try:
                        self.sock.sendall(data)
                    except OSError:
                        watched.remove(0)
                elif not detached:
                    watched.remove(0)
                    try:
                        self.sock.shutdown(1)  # SHUT_WR: the container's stdin ends
                    except OSError:
                        pass
                if detached:
                    return "detached"

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
