"""orlop-shim: started by orlopd for one container; outlives orlopd.

    orlop-shim --id ID --bundle DIR --state-dir DIR --runtime PATH --runtime-root DIR
               [--log-path FILE --log-max-size BYTES --log-max-file N] [--tty] [--stdin] [--stdin-once]

It forks; the child starts a new session, becomes a child subreaper, listens on
<state-dir>/shim.sock and runs `runtime create`. The parent prints one JSON line
— {"pid": <container's host PID>, "shim_pid": N} or {"error": "…"} — and exits
(0 or 1), leaving the child reparented away from orlopd. `runtime start` is
orlopd's call, so that it attaches first and loses no output.
"""

from __future__ import annotations

import os
import sys

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
    from orlop import fastjson
    from orlop.shim.server import Options

    options = Options(**parse(sys.argv[1:]))
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            answer = ready.read()
        sys.stdout.write(answer.decode() or fastjson.dumps({"error": "orlop-shim died while creating"}) + "\n")
        sys.stdout.flush()
        os._exit(0 if answer.startswith(b'{"pid"') else 1)
    os.close(ready_r)
    os._exit(_serve(options, ready_w))


def _serve(options, ready_w: int) -> int:
    from orlop import fastjson
    from orlop.linux.syscalls import PR_SET_CHILD_SUBREAPER, prctl
    from orlop.shim.protocol import PID_FILE
    from orlop.shim.runtime import RuntimeError_
    from orlop.shim.server import Shim

    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(options.state_dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    with open(os.path.join(options.state_dir, PID_FILE), "w") as f:
        f.write(str(os.getpid()))
    shim = Shim(options)
    try:
        shim.listen()
        pid = shim.create()
    except (OSError, ValueError, RuntimeError_) as e:
        try:  # a half-made container must not stay behind in the runtime's state
            shim.runtime.run(["delete", "--force", options.id])
        except RuntimeError_:
            pass
        os.write(ready_w, (fastjson.dumps({"error": str(e)}) + "\n").encode())
        shim.close()
        return 1
    os.write(ready_w, (fastjson.dumps({"pid": pid, "shim_pid": os.getpid()}) + "\n").encode())
    os.close(ready_w)
    try:
        shim.serve()
    finally:
        shim.close()
    return 0
