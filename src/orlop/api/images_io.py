"""Streams between the event loop and a worker thread, for the image handlers that run the
(blocking) image library in a thread: a request body read by `docker load` / `docker import`
as a file, and a response written by `docker save` as a file. No temporary copy of the
archive is made; the thread waits on the loop for each chunk, so the client's pace is kept."""

from __future__ import annotations

import asyncio

CHUNK = 1 << 20


class BodyReader:
    """read(n) in a worker thread, served from an aiohttp StreamReader (a request body or a
    client response's content) on the loop."""

    def __init__(self, stream, loop: asyncio.AbstractEventLoop) -> None:
        self.stream, self.loop = stream, loop

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        return asyncio.run_coroutine_threadsafe(self.stream.read(n), self.loop).result()


class ResponseWriter:
    """write() in a worker thread to an aiohttp StreamResponse on the loop, in chunks of 1 MiB."""

    def __init__(self, response, loop: asyncio.AbstractEventLoop) -> None:
        self.response, self.loop = response, loop
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            asyncio.run_coroutine_threadsafe(self.response.write(data), self.loop).result()
