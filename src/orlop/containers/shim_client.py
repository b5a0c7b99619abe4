"""orlopd's side of the shim protocol (see orlop.shim.protocol), on asyncio.

Shims are forked by the exec root's zygote (orlop.shim.zygote: they share its pages, ~1 MiB
per container instead of ~3.5), which is started here when it is not running: at the first
spawn, after it was killed, or when it answered that it is stale (orlop was upgraded under
it). Where no zygote can be had (or with ORLOP_SHIM_ZYGOTE=0 in orlopd's environment), a shim
is started as a process of its own, which behaves as the zygote's do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import weakref

from orlop.errors import Conflict, OrlopError
from orlop.shim import protocol, zygote

log = logging.getLogger(__name__)

ZYGOTE_ENV = "ORLOP_SHIM_ZYGOTE"  # "0": every shim a process of its own, started by orlopd
ZYGOTE_ATTEMPTS = 10
_zygote_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ShimGone(OrlopError):
    """The shim's socket is gone: the container has exited (see exit.json) or the shim died."""


def shim_command() -> list[str]:
    """The lean launcher beside this interpreter (scripts/setup writes it), else `-c`."""
    return zygote.launch_command()


def shim_argv(options: dict[str, str | bool | int | None]) -> list[str]:
    """orlop-shim's options on its command line: True is a flag, None/False/"" are left out."""
    argv = []
    for key, value in options.items():
        if value is True:
            argv.append("--" + key.replace("_", "-"))
        elif value not in (None, False, ""):
            argv += ["--" + key.replace("_", "-"), str(value)]
    return argv


def zygote_path(state_dir: str) -> str | None:
    """The zygote of the exec root a state dir is in (<exec-root>/c/<id>): one per exec root.
    None when disabled (ORLOP_SHIM_ZYGOTE=0) or the socket path would be too long."""
    if os.environ.get(ZYGOTE_ENV, "1") == "0":
        return None
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(state_dir))), zygote.SOCKET)
    return path if len(path.encode()) < 100 else None


async def spawn(options: dict[str, str | bool | int | None], zygote_socket: str | None = None) -> dict:
    """Start a shim (it creates the container); returns {"pid", "shim_pid"} or raises with the
    runtime's own error message. Through the exec root's zygote (started here when it is not
    running), else, if it cannot be started, as a process of its own."""
    argv = shim_argv(options)
    path = zygote_socket or zygote_path(str(options["state_dir"]))
    answer = await _spawn_forked(path, argv) if path else None
    if answer is None:
        answer = await _spawn_process(argv)
    if "error" in answer:
        raise OrlopError(answer["error"])
    return answer


async def _spawn_process(argv: list[str]) -> dict:
    proc = await asyncio.create_subprocess_exec(*shim_command(), *argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)
    out, err = await proc.communicate()
    try:
        return json.loads(out)
    except ValueError:
        raise OrlopError(f"orlop-shim failed: {(err or out).decode(errors='replace').strip()}") from None


async def _spawn_forked(path: str, argv: list[str]) -> dict | None:
    """Ask the zygote; None if no zygote could be had (the caller starts the shim itself).
    The shim gets this process's directory and umask, and its environment for the runtime, as
    a shim started here would."""
    request = json.dumps({"argv": argv, "command": shim_command(), "cwd": os.getcwd(), "env": dict(os.environ),
                          "umask": _umask()}).encode() + b"\n"
    for _ in range(ZYGOTE_ATTEMPTS):
        try:
            reader, writer = await asyncio.open_unix_connection(path)
        except (FileNotFoundError, ConnectionRefusedError):
            if not await start_zygote(path):
                return None
            continue
        forking, line = False, b""
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
            if line == zygote.FORKING:
                forking = True
                line = await reader.readline()
        except (ConnectionResetError, BrokenPipeError):
            line = b""
        finally:
            writer.close()
        if not line:
            if forking:
                return {"error": "orlop-shim died while creating"}
            continue  # the zygote went before it took the request (killed, or stale): ask another
        try:
            answer = json.loads(line)
        except ValueError:
            return {"error": f"orlop-shim zygote: {line.decode(errors='replace').strip()}"}
        if not answer.get("stale"):  # (a stale zygote has gone: the next attempt starts another)
            return answer
    log.warning("orlop-shim zygote on %s: could not be had; starting shims as processes of their own", path)
    return None


async def start_zygote(path: str) -> bool:
    """Start the zygote listening on `path` unless one is (one start at a time per daemon);
    False, logged, if it cannot be started. It runs in a session of its own, as shims do."""
    lock = _zygote_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        if _listening(path):
            return True
        proc = await asyncio.create_subprocess_exec(*shim_command(), "--zygote", path,
                                                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, start_new_session=True)
        out, err = await proc.communicate()
        try:
            answer = json.loads(out)
        except ValueError:
            answer = {"error": (err or out).decode(errors="replace").strip()}
        if answer.get("busy"):  # another one has the lock: it is starting, or it is retiring
            await asyncio.sleep(0.05)
            return True
        if "zygote" not in answer:
            log.warning("orlop-shim zygote on %s: %s; starting shims as processes of their own", path,
                        answer.get("error"))
            return False
        return True


def _umask() -> int | None:
    """This process's umask, read without setting it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _listening(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(path)
    except BlockingIOError:  # a full backlog: it is there
        return True
    except OSError:
        return False
    finally:
        sock.close()
    return True


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
