"""runc's --log/--log-format: containerd and podman read the last error from
this file when a runtime command fails."""

from __future__ import annotations

from orlop import fastjson
from orlop.runtime.state import rfc3339_now


def log_error(path: str, log_format: str, message: str) -> None:
    _append(path, _format(log_format, "error", message))


def log_warning(path: str | None, log_format: str, message: str) -> None:
    """A warning: to the --log file, or stderr without one (as runc's logrus.Warnf)."""
    _log(path, _format(log_format, "warning", message))


def log_debug(path: str | None, log_format: str, message: str) -> None:
    """--debug: to the --log file, or stderr without one (as runc)."""
    _log(path, _format(log_format, "debug", message))


def _log(path: str | None, line: str) -> None:
    if path:
        _append(path, line)
    else:
        import sys

        sys.stderr.write(line + "\n")


def _format(log_format: str, level: str, message: str) -> str:
    if log_format == "json":
        return fastjson.dumps({"level": level, "msg": message, "time": rfc3339_now()})
    return f'time="{rfc3339_now()}" level={level} msg={fastjson.dumps(message)}'


def _append(path: str, line: str) -> None:
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass  # errors are on stderr anyway
