"""An attached container (run, start -a, attach) or exec: the hijacked connection, the
user's terminal in raw mode with its size kept in step, signals forwarded, detach keys."""

from __future__ import annotations

from orlop.cli import tty as terminal
from orlop.cli.client import APIError, Client, ConnectError
from orlop.cli.streams import Session


def attach_query(stdin: bool, stdout: bool, stderr: bool, detach_keys: str | None = None) -> list[tuple[str, object]]:
    """In the docker CLI's order (Go's url.Values.Encode sorts the keys)."""
    query: list[tuple[str, object]] = []
    if detach_keys:
        query.append(("detachKeys", detach_keys))
    query += [("stderr", stderr), ("stdin", stdin), ("stdout", stdout), ("stream", True)]
    return query


class Attachment:
    def __init__(self, client: Client, target: str, *, tty: bool, stdin: bool, detach_keys: str | None,
                 sig_proxy: bool, exec_id: str | None = None) -> None:
        """`target`: the container; `exec_id` for an exec's streams (resizes go to the exec)."""
        self.client = client
        self.target = target
        self.exec_id = exec_id
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys
        self.sig_proxy = sig_proxy and not tty
        self.sock = None
        self.initial = b""

    def open(self, path: str, query=None, body=None) -> None:
        self.sock, self.initial = self.client.hijack(path, query, body)

    def resize(self) -> None:
        dims = terminal.size(1)
        if dims is None:
            return
        path = f"/exec/{self.exec_id}/resize" if self.exec_id else f"/containers/{self.target}/resize"
        try:
            self.client.call("POST", path, {"h": dims[0], "w": dims[1]})
        except (APIError, ConnectError):
            pass  # it exited already (docker retries, then gives up quietly too)

    def stream(self) -> str:
        """Copy until the process ends ("eof") or the user detaches ("detached")."""
        monitor_size = self.tty and terminal.is_terminal(1)
        signals = []
        if monitor_size:
            signals.append(terminal.SIGWINCH)
        if self.sig_proxy:
            signals.extend(terminal.PROXIED_SIGNALS)
        pipe = terminal.SignalPipe(tuple(signals)) if signals else None
        raw = terminal.RawMode(0) if self.tty and self.stdin and terminal.is_terminal(0) else None
        keys = None
        if self.tty and self.stdin:
            keys = terminal.detach_key_bytes(self.detach_keys or terminal.DEFAULT_DETACH_KEYS)
        try:
            if raw is not None:
                raw.__enter__()
            if monitor_size:
                self.resize()
            session = Session(self.sock, self.initial, tty=self.tty, stdin=self.stdin, detach_keys=keys,
                              signals=pipe, on_signal=self._on_signal)
            return session.run()
        finally:
            if raw is not None:
                raw.restore()
            if pipe is not None:
                pipe.close()

    def _on_signal(self, signum: int) -> None:
        if signum == terminal.SIGWINCH:
            self.resize()
            return
        name = terminal.SIGNAL_NAMES.get(signum, str(signum))
        try:
            self.client.call("POST", f"/containers/{self.target}/kill", {"signal": name})
        except (APIError, ConnectError):
            pass

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
