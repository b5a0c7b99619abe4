"""Reading a container's json-file log for `logs`: since/until/tail, timestamps, follow."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from orlop.errors import InvalidParameter


def parse_time(value: str, now: float | None = None) -> float:
    """A `since`/`until` value as Docker takes it: unix seconds (with a fraction), an
    RFC 3339 time, or a duration before now ("10m", "1h30m", "45s")."""
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    duration = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if duration and any(duration.groups()):
        hours, minutes, seconds = (float(g or 0) for g in duration.groups())
        return (time.time() if now is None else now) - (hours * 3600 + minutes * 60 + seconds)
    try:
        return entry_time(value)
    except ValueError:
        raise InvalidParameter(f"invalid time value {value!r}: give unix seconds, an RFC 3339 time or a "
                               f"duration like 10m") from None


def entry_time(stamp: str) -> float:
    """RFC3339Nano (as the shim writes it) → unix seconds."""
    import calendar

    base, _, rest = stamp.partition(".")
    fraction = rest.rstrip("Z") if rest else "0"
    seconds = calendar.timegm((int(base[0:4]), int(base[5:7]), int(base[8:10]), int(base[11:13]),
                               int(base[14:16]), int(base[17:19].rstrip("Z")), 0, 0, 0))
    return seconds + float("0." + (fraction or "0"))


def _files(path: str) -> list[str]:
    """Rotated files oldest first, then the live one."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return [*reversed(rotated), path]


async def read(path: str, *, stdout: bool, stderr: bool, since: float, until: float, tail: int | None,
               follow: bool, running: Callable[[], bool]) -> AsyncIterator[tuple[str, str, bytes]]:
    """(stream, time, text) entries in order; with follow, new ones until the container stops."""
    wanted = {"stdout"} if stdout else set()
    if stderr:
        wanted.add("stderr")

    def accept(entry: dict) -> bool:
        if entry.get("stream") not in wanted:
            return False
        if since or until:
            t = entry_time(entry["time"])
            if (since and t < since) or (until and t > until):
                return False
        return True

    entries = deque(maxlen=tail) if tail is not None and tail >= 0 else []
    offset = 0
    for name in _files(path):
        try:
            with open(name, "rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if accept(entry):
                        entries.append(entry)
                if name == path:
                    offset = f.tell()
        except FileNotFoundError:
            continue
    if tail == 0:
        entries = []
    for entry in entries:
        yield entry["stream"], entry["time"], entry["log"].encode()
    if not follow:
        return
    partial = b""
    while True:
        alive = running()
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset:  # rotated: start the new file from the top
                    offset = 0
                f.seek(offset)
                data = f.read()
                offset = f.tell()
        except FileNotFoundError:
            data = b""
        lines = (partial + data).split(b"\n")
        partial = lines.pop()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if accept(entry):
                yield entry["stream"], entry["time"], entry["log"].encode()
        if not alive:
            return
        await asyncio.sleep(0.1)
