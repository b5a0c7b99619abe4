"""The container's output in Docker's json-file format, with rotation.

One JSON object per line: {"log": "<text>", "stream": "stdout"|"stderr",
"time": "<RFC3339Nano>"}. Output is split at newlines as Docker does; a partial
line is held until its newline comes, it grows past 16 KiB, or the stream ends.
When a file would exceed max_size it is rotated to <name>.1 … <name>.<max_file-1>.

A full disk (or any write error) loses the entries that cannot be written, as dockerd's
json-file logger does ("Error writing log message"): the file keeps whole lines only, the
container runs on, and logging resumes by itself once there is room. The shim's own log
(stderr) says when it starts dropping and how many it dropped.
"""

from __future__ import annotations

import _json
import os
import time

from orlop.fsutil import write_all

PARTIAL_LIMIT = 16 * 1024


def rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano: fractional zeros trimmed, as docker writes and parses them."""
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else base + "Z"


class JsonFileLog:
    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(max_file, 1)
        self._partial = {"stdout": b"", "stderr": b""}
        self._file = open(path, "ab", buffering=0)
        self._size = self._file.tell()
        self.dropped = 0  # entries lost since the last one written

    def write(self, stream: str, data: bytes) -> None:
        data = self._partial[stream] + data
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            self._append(stream, line + b"\n")
        if len(rest) >= PARTIAL_LIMIT:
            self._append(stream, rest)
            rest = b""
        self._partial[stream] = rest

    def flush_partial(self) -> None:
        """At the end of the streams: what is left of a last line without its newline."""
        for stream, rest in self._partial.items():
            if rest:
                self._append(stream, rest)
                self._partial[stream] = b""

    def close(self) -> None:
        self.flush_partial()
        self._file.close()

    def _append(self, stream: str, text: bytes) -> None:
        entry = (f'{{"log":{_json.encode_basestring_ascii(text.decode("utf-8", "replace"))},'
                 f'"stream":"{stream}","time":"{rfc3339_nano(time.time_ns())}"}}\n').encode()
        try:
            if self.max_size and self._size and self._size + len(entry) > self.max_size:
                self._rotate()
            write_all(self._file.fileno(), entry, self.path)
        except (OSError, ValueError) as e:  # (ValueError: the file is closed, its rotation failed)
            self._drop(e)
            return
        self._size += len(entry)
        if self.dropped:
            os.write(2, f"orlop-shim: {self.path}: logging again, {self.dropped} entries were dropped\n".encode())
            self.dropped = 0

    def _drop(self, error: Exception) -> None:
        """The entry is lost; what fitted of it goes too, so that the file ends with a whole line."""
        try:
            if self._file.closed:  # (a rotation that failed half-way)
                self._file = open(self.path, "ab", buffering=0)
                self._size = self._file.tell()
            os.ftruncate(self._file.fileno(), self._size)
        except OSError:
            pass
        if not self.dropped:
            os.write(2, f"orlop-shim: error writing log message: {error}: dropping entries until it can be "
                        f"written\n".encode())
        self.dropped += 1

    def _rotate(self) -> None:
        self._file.close()
        if self.max_file > 1:
            for n in range(self.max_file - 1, 1, -1):
                if os.path.exists(f"{self.path}.{n - 1}"):
                    os.rename(f"{self.path}.{n - 1}", f"{self.path}.{n}")
            os.rename(self.path, f"{self.path}.1")
            self._file = open(self.path, "ab", buffering=0)
        else:
            self._file = open(self.path, "wb", buffering=0)
        self._size = 0
