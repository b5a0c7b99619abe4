"""runc's --log/--log-format: containerd and podman read the last error from
this file when a runtime command fails."""

from __future__ import annotations

from orlop import fastjson
from orlop.runtime.state import rfc3339_now


def log_error(path: str, log_format: str, message: str) -> None:
    if log_format == "json":
        line = fastjson.dumps({"level": "error", "msg": message, "time": rfc3339_now()})
    else:
        line = f'time="{rfc3339_now()}" level=error msg={fastjson.dumps(message)}'
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass  # the error itself is already on stderr
