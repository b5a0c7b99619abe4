"""orlopd's side of the shim protocol (see orlop.shim.protocol), on asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys

from orlop.errors import Conflict, OrlopError
from orlop.shim import protocol


class ShimGone(OrlopError):
    """The shim's socket is gone: the container has exited (see exit.json) or the shim died."""


def shim_command() -> list[str]:
    """The lean launcher beside this interpreter (scripts/setup writes it), else `-m`-style."""
    launcher = os.path.join(os.path.dirname(sys.executable), "orlop-shim")
    if os.path.exists(launcher):
        return [launcher]
    return [sys.executable, "-c", "from orlop.shim.main import entry; entry()"]


async def spawn(options: dict[str, str | bool]) -> dict:
    """Start a shim (it creates the container); returns {"pid", "shim_pid"} or raises with the
    runtime's own error message."""
    argv = shim_command()
    for key, value in options.items():
        if value is True:
            argv.append("--" + key.replace("_", "-"))
        elif value not in (None, False, ""):
            argv += ["--" + key.replace("_", "-"), str(value)]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)
    out, err = await proc.communicate()
    try:
        answer = json.loads(out)
    except ValueError:
        raise OrlopError(f"orlop-shim failed: {(err or out).decode(errors='replace').strip()}") from None
    if "error" in answer:
        raise OrlopError(answer["error"])
    return answer


class ShimConnection:
    """A stream from the shim. Stdin goes through a duplicate of the socket: when the shim
    has already closed (the process exited), a failed write must not poison the reader,
    which still holds the EXIT frame (asyncio would raise the write's EPIPE on reads)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        sock = writer.get_extra_info("socket")
        self._stdin = socket.socket(fileno=os.dup(sock.fileno())) if sock is not None else None
        if self._stdin is not None:
            self._stdin.setblocking(False)

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin is None:
            return
        with contextlib.suppress(OSError):
            await asyncio.get_running_loop().sock_sendall(self._stdin, data)

    def close_stdin(self) -> None:
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.shutdown(socket.SHUT_WR)

    async def read_frame(self) -> tuple[int, bytes] | None:
        try:
            header = await self.reader.readexactly(8)
            kind, size = protocol.HEADER.unpack(header)
            return kind, await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return None

    def close(self) -> None:
        if self._stdin is not None:
            self._stdin.close()
            self._stdin = None
        self.writer.close()


async def request(state_dir: str, req: dict) -> tuple[dict, ShimConnection]:
    """Send one request; the answer line and the connection (for streams)."""
    path = os.path.join(state_dir, protocol.SOCKET)
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise ShimGone(f"the container's shim is not running ({e.strerror})") from None
    writer.write(json.dumps(req).encode() + b"\n")
    await writer.drain()
    line = await reader.readline()
    if not line:
        writer.close()
        raise ShimGone("the shim closed the connection")
    answer = json.loads(line)
    if "error" in answer:
        writer.close()
        message = answer["error"]
        if "not running" in message:
            raise Conflict(message)
        raise OrlopError(message)
    return answer, ShimConnection(reader, writer)


async def call(state_dir: str, req: dict) -> dict:
    answer, conn = await request(state_dir, req)
    conn.close()
    return answer


def read_exit(state_dir: str) -> dict | None:
    try:
        with open(os.path.join(state_dir, protocol.EXIT_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
