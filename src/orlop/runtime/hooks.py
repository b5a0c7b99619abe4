"""OCI hooks: each is run with the container's state JSON on its stdin.

subprocess is imported only when a hook exists; most containers have none and
must not pay for the import.
"""

from __future__ import annotations

from orlop import fastjson

# Hooks the runtime runs in its own namespaces, and those run inside the container.
RUNTIME_CREATE_HOOKS = ("prestart", "createRuntime")


class HookError(RuntimeError):
    pass


def has_hooks(spec: dict, *kinds: str) -> bool:
    hooks = spec.get("hooks") or {}
    return any(hooks.get(kind) for kind in kinds)


def run_hooks(spec: dict, kind: str, state: dict) -> None:
    """Run every hook of `kind` in order; the first failure raises HookError."""
    hooks = (spec.get("hooks") or {}).get(kind) or []
    if not hooks:
        return
    import subprocess

    payload = fastjson.dumps(state).encode()
    for index, hook in enumerate(hooks):
        path = hook["path"]
        args = hook.get("args") or [path]
        env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
        try:
            done = subprocess.run(args, executable=path, input=payload, env=env, capture_output=True,
                                  timeout=hook.get("timeout"), check=False)
        except subprocess.TimeoutExpired:
            raise HookError(f"{kind} hook #{index} ({path}) did not finish within {hook['timeout']}s") from None
        except OSError as e:
            raise HookError(f"{kind} hook #{index} ({path}): {e.strerror or e}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise HookError(f"{kind} hook #{index} ({path}) exited with status {done.returncode}"
                            + (f": {detail}" if detail else ""))
