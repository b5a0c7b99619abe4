"""orlop-shim: started by orlopd for one container; outlives orlopd.

    orlop-shim --id ID --bundle DIR --state-dir DIR --runtime PATH --runtime-root DIR
               [--log-path FILE --log-max-size BYTES --log-max-file N] [--tty] [--stdin] [--stdin-once]
    orlop-shim --zygote SOCKET

It forks; the child starts a new session, becomes a child subreaper, listens on
<state-dir>/shim.sock and runs `runtime create`. The parent prints one JSON line
— {"pid": <container's host PID>, "shim_pid": N} or {"error": "…"} — and exits
(0 or 1), leaving the child reparented away from orlopd. `runtime start` is
orlopd's call, so that it attaches first and loses no output.

With --zygote it is the exec root's zygote (zygote.py), which forks shims that do
the same on request: orlopd's usual way to start them.
"""

from __future__ import annotations

import os
import sys

from orlop.linux.syscalls import PR_SET_CHILD_SUBREAPER, prctl
from orlop.shim import protocol
from orlop.shim.runtime import RuntimeError_
from orlop.shim.server import Options, Shim

FLAGS = {"--tty", "--stdin", "--stdin-once"}


def parse(argv: list[str]) -> dict:
    values: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in FLAGS:
            values[arg[2:].replace("-", "_")] = True
        elif arg.startswith("--") and i + 1 < len(argv):
            values[arg[2:].replace("-", "_")] = argv[i + 1]
            i += 1
        else:
            raise SystemExit(f"orlop-shim: unexpected argument {arg!r}")
        i += 1
    missing = [k for k in ("id", "bundle", "state_dir", "runtime", "runtime_root") if k not in values]
    if missing:
        raise SystemExit(f"orlop-shim: missing --{missing[0].replace('_', '-')}")
    return values


def entry() -> None:
    if sys.argv[1:2] == ["--zygote"] and len(sys.argv) == 3:
        from orlop.shim import zygote

        zygote.entry(sys.argv[2])
    options = Options(**parse(sys.argv[1:]))
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            answer = ready.read()
        if not answer:
            answer = protocol.encode({"error": "orlop-shim died while creating"}) + b"\n"
        sys.stdout.write(answer.decode())
        sys.stdout.flush()
        os._exit(0 if answer.startswith(b'{"pid"') else 1)
    os.close(ready_r)
    os._exit(_serve(options, ready_w))


def _serve(options: Options, ready_w: int, env: dict | None = None) -> int:
    """The shim, in its own process: report on `ready_w`, then serve until the container is gone.
    `env` is the runtime's environment (os.environ by default)."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(f"{options.state_dir}/shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    fd = os.open(f"{options.state_dir}/{protocol.PID_FILE}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                 0o666)
    os.write(fd, b"%d" % os.getpid())
    os.close(fd)
    shim = Shim(options, env)
    try:
        shim.listen()
        pid = shim.create()
    except (OSError, ValueError, RuntimeError_) as e:
        try:  # a half-made container must not stay behind in the runtime's state
            shim.runtime.run(["delete", "--force", options.id])
        except RuntimeError_:
            pass
        os.write(ready_w, protocol.encode({"error": str(e)}) + b"\n")
        shim.close()
        return 1
    os.write(ready_w, protocol.encode({"pid": pid, "shim_pid": os.getpid()}) + b"\n")
    os.close(ready_w)
    try:
        shim.serve()
    finally:
        shim.close()
    return 0
