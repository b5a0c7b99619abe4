"""What orlopd and orlop-shim say to each other over the shim's control socket.

Each connection starts with one request: a JSON object on one line. The shim
answers with one JSON line ({"error": …} on failure). `attach` and `exec` (unless
detached) then turn the connection into the process's stream:

- shim → daemon: frames with Docker's 8-byte stdcopy header (type, 3 zero bytes,
  big-endian length) — type 1 stdout, 2 stderr — so that a non-TTY stream is
  forwarded to Docker clients unchanged; the last frame has type EXIT and a JSON
  payload {"exit_code", "oom_killed", "finished_at"} (the init's also "oom_kills": how many
  OOM kills its memory cgroup saw during the run), then the shim closes.
- daemon → shim: the process's stdin, raw; a half-close (shutdown SHUT_WR) ends it.

Requests: state, attach, exec, wait, resize, close-stdin, kill (an exec, by key). Only the standard
library is used: the shim imports this module and must stay small.
"""

from __future__ import annotations

import _json
import struct

STDOUT, STDERR, EXIT = 1, 2, 0x10
HEADER = struct.Struct(">BxxxI")

# Files in the shim's state directory.
SOCKET = "shim.sock"
PID_FILE = "shim.pid"
INIT_PID_FILE = "init.pid"
EXIT_FILE = "exit.json"
RUNTIME_LOG = "runtime-log.json"


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


# JSON out through the `_json` C encoder, with json.dumps's defaults (ASCII, ", " and ": "):
# no Python-level serialiser runs in the shim.
def _unserialisable(value):
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


_encoder = _json.make_encoder(None, _unserialisable, _json.encode_basestring_ascii, None, ": ", ", ", False, False,
                              True)


def encode(value) -> bytes:
    """`value` as JSON (plain dicts, lists, strings, numbers, booleans and None)."""
    return "".join(_encoder(value, 0)).encode()
