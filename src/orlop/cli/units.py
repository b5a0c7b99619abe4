"""Sizes, durations and times as the docker CLI shows and parses them (go-units,
docker's opts and timetypes), without `re`, `datetime` or `calendar`."""

from __future__ import annotations

import time

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_RAM_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
ZERO_TIME = "0001-01-01T00:00:00Z"


def _custom_size(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: 1984198 -> "1.98MB" (decimal units)."""
    return _custom_size(float(size), 1000.0, _DECIMAL, precision)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, "1.5MiB"."""
    return _custom_size(float(size), 1024.0, _BINARY, 4)


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "512m", "1.5g", "100k", "1024", "2GiB" -> bytes (binary units)."""
    value = text.strip()
    lowered = value.lower()
    for suffix in ("ib", "b"):
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            lowered = lowered[:-len(suffix)]
            break
    lowered = lowered.rstrip(" ")
    multiplier = 1
    if lowered and lowered[-1] in _RAM_UNITS:
        multiplier = _RAM_UNITS[lowered[-1]]
        lowered = lowered[:-1].rstrip(" ")
    try:
        number = float(lowered)
        if not lowered or lowered[0] in "+-" or number < 0 or lowered.lower() in ("inf", "nan"):
            raise ValueError
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None
    return int(number * multiplier)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker ps` shows ages ("About a minute")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def ago(unix_seconds: float, now: float | None = None) -> str:
    return human_duration((now if now is not None else time.time()) - unix_seconds) + " ago"


_DURATION_NS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text: str) -> int:
    """Go's time.ParseDuration ("300ms", "1.5s", "1h30m") in whole nanoseconds, exactly;
    ValueError with Go's message."""
    s = text
    sign = -1 if s.startswith("-") else 1
    s = s[1:] if s[:1] in ("-", "+") else s
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number, s = s[:i], s[i:]
        whole, _, fraction = number.partition(".")
        if not (whole or fraction) or "." in fraction or not (whole + fraction).isdigit():
            raise ValueError(f'time: invalid duration "{text}"')
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit, s = s[:j], s[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_NS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _DURATION_NS[unit]
        total += int(whole or 0) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    return sign * total


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("1h30m", "10s", "1.5h") in seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        number, unit = s[i:j], s[j:k]
        if not number or unit not in _DURATION_UNITS:
            raise ValueError(f"invalid duration {text!r}")
        total += float(number) * _DURATION_UNITS[unit]
        i = k
    return sign * total


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text: str) -> float:
    """"2026-11-22T10:39:03.947197183Z" (or with an offset) -> unix seconds."""
    text = text.strip()
    date, _, rest = text.partition("T")
    if not rest:
        date, _, rest = text.partition(" ")
    y, m, d = (int(p) for p in date.split("-"))
    offset = 0
    clock = rest
    if rest.endswith("Z") or rest.endswith("z"):
        clock = rest[:-1]
    else:
        for sign in ("+", "-"):
            idx = rest.rfind(sign)
            if idx > 0:
                clock, zone = rest[:idx], rest[idx + 1:]
                hh, _, mm = zone.partition(":")
                offset = (int(hh) * 3600 + int(mm or 0) * 60) * (1 if sign == "+" else -1)
                break
    hms, _, fraction = clock.partition(".")
    parts = [int(p) for p in hms.split(":")] if hms else [0]
    while len(parts) < 3:
        parts.append(0)
    seconds = _days_from_civil(y, m, d) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    return seconds - offset + (float("0." + fraction) if fraction else 0.0)


def is_zero_time(text: str | None) -> bool:
    return not text or text.startswith("0001-01-01")


def timestamp_argument(text: str, now: float | None = None) -> str:
    """docker's timetypes.GetTimestamp: a --since/--until value (a unix time, an RFC 3339
    time or date, or a Go duration counted back from now) as "seconds.nanoseconds"."""
    value = text.strip()
    if not value:
        return ""
    now = time.time() if now is None else now
    head, _, tail = value.partition(".")
    if head.lstrip("-").isdigit() and (not tail or tail.isdigit()) and "-" not in value[1:]:
        return value
    try:
        return str(int((now - parse_duration(value)) // 1))  # whole seconds, as docker's
    except ValueError:
        pass
    try:
        if "T" in value or " " in value:
            local = not (value.endswith("Z") or "+" in value.partition("T")[2] or
                         "-" in value.partition("T")[2])
            seconds = parse_rfc3339(value)
        else:
            local, seconds = True, parse_rfc3339(value + "T00:00:00")
    except (ValueError, IndexError):
        raise ValueError(f"invalid time value {text!r}: give a unix timestamp, an RFC 3339 time "
                         "(2006-01-02T15:04:05Z) or a duration (10m, 1h30m)") from None
    if local:
        seconds -= time.localtime(seconds).tm_gmtoff
    return _seconds_string(seconds)


def _seconds_string(seconds: float) -> str:
    whole = int(seconds // 1)
    nanos = int(round((seconds - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return f"{whole}.{nanos:09d}"


def local_time(unix_seconds: float, nanos: int | None = None) -> str:
    """Go's time.Unix(…).String(): "2026-11-22 10:39:03 +0000 UTC"."""
    t = time.localtime(unix_seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", t)


def rfc3339_nano_local(time_nano: int) -> str:
    """RFC3339NanoFixed in local time (`docker events`): 2026-11-22T10:39:03.947197183Z."""
    seconds, nanos = divmod(int(time_nano), 1_000_000_000)
    t = time.localtime(seconds)
    offset = t.tm_gmtoff
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{nanos:09d}" + zone
