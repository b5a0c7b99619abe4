"""`login` / `logout`: check a user's credentials with a registry and keep them where the
docker CLI keeps them (~/.docker/config.json, or its credential helper), so that orlop,
docker and podman share one login.

A login is checked the way Docker checks it: GET /v2/ with the credentials, answering
the registry's challenge (a Bearer token fetched with them, or Basic auth); a refusal
is a clear error and nothing is stored.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

from orlop.fsutil import write_atomic
from orlop.images.registry import RegistryClient, RegistryError

DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_SERVER,
                "https://index.docker.io", "https://docker.io")


class LoginError(Exception):
    pass


def config_path() -> str:
    return os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")


def server_key(server: str | None) -> tuple[str, str]:
    """(registry host, the key Docker files its credentials under) for what a user typed:
    nothing or any Docker Hub alias means Docker Hub, whose key is its v1 index URL."""
    server = (server or "").strip()
    if not server or server.rstrip("/") in {a.rstrip("/") for a in _HUB_ALIASES}:
        return "docker.io", DOCKER_HUB_SERVER
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host:
        raise LoginError(f"invalid registry address {server!r}")
    return host, host


async def check_credentials(server: str | None, username: str, password: str, *,
                            insecure_hosts: frozenset[str] = frozenset()) -> str:
    """Raise LoginError unless the registry accepts the credentials; returns the key to file them under."""
    if not username:
        raise LoginError("Error: Non-null Username Required")
    if not password:
        raise LoginError("Error: Non-null Password Required")
    host, key = server_key(server)
    try:
        async with RegistryClient(host, credentials=(username, password), insecure_hosts=insecure_hosts) as client:
            await client.ping()
    except RegistryError as e:
        if e.status == 401:
            raise LoginError(f"login to {host} refused: incorrect username or password") from None
        raise LoginError(f"login to {host} failed: {e}") from None
    except OSError as e:  # aiohttp's connection errors derive from OSError
        raise LoginError(f"cannot reach {host}: {e}") from None
    return key


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise LoginError(f"{path} is not valid JSON ({e}); fix or remove it") from None


def _helper(config: dict, key: str) -> str | None:
    return (config.get("credHelpers") or {}).get(key) or config.get("credsStore")


def _run_helper(helper: str, action: str, payload: str) -> None:
    try:
        done = subprocess.run([f"docker-credential-{helper}", action], input=payload.encode(),
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LoginError(f"credential helper docker-credential-{helper}: {e}") from None
    if done.returncode != 0:
        raise LoginError(f"credential helper docker-credential-{helper} {action} failed: "
                         f"{(done.stdout or done.stderr).decode(errors='replace').strip()}")


def store_credentials(key: str, username: str, password: str, path: str | None = None) -> None:
    """File the credentials as Docker does: with the configured helper, else base64 in `auths`."""
    path = path or config_path()
    config = _load(path)
    helper = _helper(config, key)
    if helper:
        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": username, "Secret": password}))
        config.setdefault("auths", {})[key] = {}
    else:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        config.setdefault("auths", {})[key] = {"auth": token}
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    write_atomic(path, json.dumps(config, indent="\t").encode() + b"\n", mode=0o600)


def logout(server: str | None, path: str | None = None) -> bool:
    """Forget the credentials for `server`; False when there were none."""
    path = path or config_path()
    _, key = server_key(server)
    config = _load(path)
    known = key in (config.get("auths") or {})
    helper = _helper(config, key)
    if helper:
        try:
            _run_helper(helper, "erase", key)
            known = True
        except LoginError:
            pass
    if key in (config.get("auths") or {}):
        del config["auths"][key]
        write_atomic(path, json.dumps(config, indent="\t").encode() + b"\n", mode=0o600)
    return known


async def login(server: str | None, username: str, password: str, *, insecure_hosts: frozenset[str] = frozenset(),
                path: str | None = None) -> str:
    key = await check_credentials(server, username, password, insecure_hosts=insecure_hosts)
    store_credentials(key, username, password, path)
    return "Login Succeeded"
