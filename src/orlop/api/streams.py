"""Stream encodings of the Engine API: JSON-lines progress, and hijacked connections
(attach, exec start) joined to a shim's stream.

A hijack answers `101 UPGRADED` (or 200 for a client that did not ask to upgrade),
then takes the connection away from aiohttp by swapping the transport's protocol, so
that a client's half-close (shutdown SHUT_WR after its stdin ends) closes only the
container's stdin while output keeps flowing (aiohttp would close on EOF).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import socket
import termios

from aiohttp import web

from orlop.containers.shim_client import ShimConnection
from orlop.errors import InvalidParameter
from orlop.shim import protocol

HEADER_READ_POLLS = 200  # × 1 ms at most
STANDARD_HEADERS = {"Api-Version": "1.45", "Ostype": "linux", "Docker-Experimental": "false",
                    "Server": "orlop/0.1 (linux)"}


class JsonLines:
    """A 200 application/json stream of objects, each line ending in \\r\\n (as dockerd's)."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        self.started = False

    async def start(self) -> None:
        if not self.started:
            self.started = True
            await self.response.prepare(self.request)

    async def send(self, obj: dict) -> None:
        await self.start()
        await self.response.write(json.dumps(obj).encode() + b"\r\n")

    async def error(self, message: str, code: int | None = None) -> None:
        detail = {"message": message} if code is None else {"code": code, "message": message}
        await self.send({"errorDetail": detail, "error": message})


class _Hijacked(asyncio.Protocol):
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost = False
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(b"")
        return True  # keep the write side open: half-close

    def connection_lost(self, exc) -> None:
        self.lost = True
        if not self.closed.done():
            self.closed.set_result(None)
        self.incoming.put_nowait(None)
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class Hijack:
    def __init__(self, request: web.Request, transport: asyncio.Transport, proto: _Hijacked) -> None:
        self.request = request
        self.transport = transport
        self.proto = proto

    @classmethod
    def take(cls, request: web.Request, content_type: str, extra_headers: dict | None = None) -> Hijack:
        upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
        lines = ["HTTP/1.1 101 UPGRADED" if upgrade else "HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
        if upgrade:
            lines += ["Connection: Upgrade", "Upgrade: tcp"]
        lines += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
        transport = request.transport
        proto = _Hijacked()
        tail = getattr(request.protocol, "_message_tail", b"")
        transport.set_protocol(proto)
        if tail:
            proto.data_received(tail)
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return cls(request, transport, proto)

    @classmethod
    async def start(cls, request: web.Request, content_type: str, extra_headers: dict | None = None) -> Hijack:
        """take(), then wait (briefly) until the client has read the headers: a client whose
        HTTP parser reads ahead (docker-py's) loses stream bytes that arrive with them."""
        hijack = cls.take(request, content_type, extra_headers)
        sock = hijack.transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return hijack
        outq = array.array("i", [0])
        for _ in range(HEADER_READ_POLLS):
            try:
                fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, outq)  # bytes the peer has not read yet
            except OSError:
                break
            if outq[0] == 0 and hijack.transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        return hijack

    async def write(self, data: bytes) -> None:
        if self.proto.lost:
            return
        self.transport.write(data)
        await self.proto.writable.wait()

    async def close(self, linger: float = 2.0) -> None:
        """End the stream with a half-close and let the client close: closing at once while
        its bytes (stdin, a late resize) are still arriving would reset the connection and
        make it lose the end of the output."""
        if self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proto.closed), linger)
        self.transport.close()

    @staticmethod
    def finished() -> web.Response:
        """What the handler returns after a hijack: aiohttp must not keep the connection alive."""
        response = web.Response()
        response.force_close()
        return response


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """Docker's --detach-keys syntax: comma-separated `ctrl-<letter|@[\\]^_>` or single
    characters, e.g. "ctrl-p,ctrl-q" → b"\\x10\\x11"."""
    out = bytearray()
    for key in (spec or DEFAULT_DETACH_KEYS).split(","):
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            char = key[5].lower()
            if "a" <= char <= "z":
                out.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_SPECIALS:
                out.append(_CTRL_SPECIALS[char])
            else:
                raise InvalidParameter(f"invalid detach keys {spec!r}: unknown key {key!r}")
        else:
            raise InvalidParameter(f"invalid detach keys {spec!r}: unknown key {key!r}")
    return bytes(out)


class EscapeScanner:
    """Finds the detach sequence in a client's keystrokes; a partial match is held back
    until the next bytes tell whether it completes."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the sequence was completed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[len(self.held)]:
                self.held += bytes([byte])
                if len(self.held) == len(self.keys):
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if byte == self.keys[0]:
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


async def join(hijack: Hijack, shim: ShimConnection | None, tty: bool, stdin: bool,
               on_exit=None, detach_keys: bytes | None = None, fetch_exit=None) -> dict | None:
    """Copy the shim's frames to the client (raw for a TTY, stdcopy frames otherwise) and the
    client's bytes to the shim as stdin, until the process's stream ends or the client types
    the detach keys (TTY only, as dockerd); returns the exit, given to `on_exit` before the
    client's connection is closed. If the stream ends without the exit and the client did
    not detach, `fetch_exit()` (a coroutine) is asked for it first, so that a client that
    inspects the exit as soon as its stream ends finds it recorded."""
    result: dict | None = None
    detached = False
    scanner = EscapeScanner(detach_keys) if tty and stdin and detach_keys else None

    async def client_to_shim() -> None:
        while True:
            data = await hijack.proto.incoming.get()
            if data is None:
                return
            if shim is None or not stdin:
                if data == b"":
                    return
                continue
            if data == b"":
                shim.close_stdin()
                return
            if scanner is not None:
                data, detached = scanner.feed(data)
                if detached:
                    mark_detached()
                    shim.close()  # ends the output loop; the container goes on
                    return
            if data:
                await shim.write_stdin(data)

    def mark_detached() -> None:
        nonlocal detached
        detached = True

    pump = asyncio.create_task(client_to_shim())
    try:
        while shim is not None:
            frame = await shim.read_frame()
            if frame is None:
                break
            kind, payload = frame
            if kind == protocol.EXIT:
                result = json.loads(payload)
                if on_exit is not None:
                    on_exit(result)
                break
            if hijack.proto.lost:
                break
            await hijack.write(payload if tty else protocol.frame(kind, payload))
        if result is None and not detached and fetch_exit is not None and not hijack.proto.lost:
            with contextlib.suppress(Exception):
                result = await asyncio.wait_for(fetch_exit(), 5)
            if result is not None and on_exit is not None:
                on_exit(result)
    finally:
        pump.cancel()
        if shim is not None:
            shim.close()
        await hijack.close()
    return result
