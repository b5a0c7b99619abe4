"""The pure rules of health checks, as dockerd has them (moby daemon/health.go, commit.go's
merge, container.go's validation): the container's HEALTHCHECK merged over the image's, its
defaults, the probe's command, the interval before the next probe, and what a probe's result
does to `State.Health`. The monitor that runs probes is orlop.containers.health."""

from __future__ import annotations

from orlop.errors import InvalidParameter

SECOND = 1_000_000_000  # durations are Go's time.Duration: nanoseconds
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 1_000_000  # 1ms: a shorter non-zero duration is refused at create
MAX_OUTPUT = 4096  # bytes of a probe's output kept
MAX_LOG_ENTRIES = 5

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
STATUSES = (NONE, STARTING, HEALTHY, UNHEALTHY)
DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
DEFAULT_SHELL = ["/bin/sh", "-c"]


def validate_config(config) -> None:
    """Config.Healthcheck of a create request, refused as dockerd refuses it."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise InvalidParameter("json: cannot unmarshal Config.Healthcheck: give an object with Test, Interval, "
                               "Timeout, StartPeriod, StartInterval and Retries")
    test = config.get("Test")
    if test is not None and (not isinstance(test, list) or not all(isinstance(t, str) for t in test)):
        raise InvalidParameter("json: cannot unmarshal Config.Healthcheck.Test: a list of strings, such as "
                               '["CMD-SHELL", "curl -f http://localhost/"] or ["NONE"]')
    for key in (*DURATIONS, "Retries"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidParameter(f"json: cannot unmarshal Config.Healthcheck.{key}: an integer"
                                   + (" (nanoseconds)" if key != "Retries" else ""))
    for key in DURATIONS:
        value = config.get(key) or 0
        if value != 0 and value < MINIMUM_DURATION:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    if (config.get("Retries") or 0) < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def merge_config(container: dict | None, image: dict | None) -> dict | None:
    """The container's HEALTHCHECK over the image's: each of the container's fields that is
    unset (empty, zero) is taken from the image (["NONE"] is a Test, so it disables)."""
    if not image:
        return container
    if container is None:
        return dict(image)
    merged = dict(container)
    if not merged.get("Test"):
        merged["Test"] = image.get("Test")
    for key in (*DURATIONS, "Retries"):
        if not merged.get(key) and image.get(key):
            merged[key] = image[key]
    return merged


def enabled(config: dict | None) -> bool:
    """Whether a probe runs: a Test of type CMD or CMD-SHELL (not missing, not NONE)."""
    test = (config or {}).get("Test") or []
    return bool(test) and test[0] in ("CMD", "CMD-SHELL")


def probe_argv(config: dict, shell: list[str] | None) -> list[str]:
    """The command of the probe: Test's arguments, after the container's shell for CMD-SHELL."""
    test = config["Test"]
    if test[0] == "CMD-SHELL":
        return [*(shell or DEFAULT_SHELL), *test[1:]] if len(test) > 1 else []
    return list(test[1:])


def setting(config: dict, key: str) -> int:
    """A duration (ns) or Retries, the default when unset or zero."""
    defaults = {"Interval": DEFAULT_INTERVAL, "Timeout": DEFAULT_TIMEOUT, "StartPeriod": DEFAULT_START_PERIOD,
                "StartInterval": DEFAULT_START_INTERVAL, "Retries": DEFAULT_RETRIES}
    value = config.get(key) or 0
    return value if value > 0 else defaults[key]


def next_interval(config: dict, status: str, since_start: int) -> int:
    """Nanoseconds until the next probe: StartInterval while the container is still starting
    within its start period, Interval otherwise (counted from the end of the last probe)."""
    if since_start >= setting(config, "StartPeriod"):
        return setting(config, "Interval")
    return setting(config, "StartInterval") if status == STARTING else setting(config, "Interval")


def record_result(health: dict, result: dict, config: dict, since_start: int) -> bool:
    """Add a probe's result ({Start, End, ExitCode, Output}) to State.Health; `since_start`
    is how long after the container's start the probe began (ns). A failure within the
    start period, before any success, does not count; `Retries` failures in a row make the
    container unhealthy, one success healthy. True if the status changed."""
    old = health.get("Status")
    health["Log"] = [*(health.get("Log") or []), result][-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
    elif not (old == STARTING and since_start < setting(config, "StartPeriod")):
        health["FailingStreak"] = health.get("FailingStreak", 0) + 1
        if health["FailingStreak"] >= setting(config, "Retries"):
            health["Status"] = UNHEALTHY
    return health["Status"] != old


def status_of(state: dict) -> str:
    """The container's health for `docker ps` and the health= filter: none without a check."""
    health = state.get("Health")
    if not health:
        return NONE
    return health.get("Status") or UNHEALTHY


def status_suffix(state: dict) -> str:
    """What `docker ps` adds to "Up 5 seconds": " (health: starting)", " (healthy)"…"""
    if not state.get("Health"):
        return ""
    status = status_of(state)
    return " (health: starting)" if status == STARTING else f" ({status})"


def check_filter_value(value: str) -> None:
    if value not in STATUSES:
        raise InvalidParameter(f"invalid filter 'health={value}': invalid value for health ({value}): must be one "
                               f"of {', '.join(STATUSES)}")


class OutputBuffer:
    """A probe's stdout and stderr together, the first MAX_OUTPUT bytes; "..." marks a cut."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes) -> None:
        keep = max(self.limit - len(self.data), 0)
        self.data += chunk[:keep]
        if len(chunk) > keep:
            self.truncated = True

    def text(self) -> str:
        return self.data.decode(errors="replace") + ("..." if self.truncated else "")


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 300ms, 1.5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_decimal(ns, 1000)}µs"
    if ns < SECOND:
        return f"{sign}{_decimal(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    text = f"{hours}h{minutes}m" if hours else f"{minutes}m" if minutes else ""
    return f"{sign}{text}{_decimal(rest, SECOND)}s"


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    digits = f"{fraction:0{len(str(unit)) - 1}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)
