"""`login` / `logout`, and the credentials pull and push send (X-Registry-Auth), kept
where the docker CLI keeps them: ~/.docker/config.json (or $DOCKER_CONFIG), `auths`
entries in base64, or the configured credential helper (docker-credential-<name>)."""

from __future__ import annotations

import base64
import os
import sys

from orlop import fastjson
from orlop.cli import gojson
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag

DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1",
                "https://index.docker.io", "https://docker.io", "https://registry-1.docker.io"}


def config_path() -> str:
    return os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")


def server_key(server: str | None) -> str:
    """The key Docker files a registry's credentials under: Docker Hub's v1 index URL, or
    the host."""
    server = (server or "").strip()
    if not server or server.rstrip("/") in _HUB_ALIASES:
        return DOCKER_HUB_SERVER
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host:
        raise CommandError(f"invalid registry address {server!r}")
    return host


def _load() -> dict:
    path = config_path()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise CommandError(f"reading {path}: {e.strerror}") from None
    try:
        return fastjson.loads(data) if data.strip() else {}
    except ValueError as e:
        raise CommandError(f"{path} is not valid JSON ({e}); fix or remove it") from None


def _save(config: dict) -> None:
    path = config_path()
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(gojson.dumps(config, indent="\t", escape_html=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _helper(config: dict, key: str) -> str | None:
    return (config.get("credHelpers") or {}).get(key) or config.get("credsStore")


def _run_helper(helper: str, action: str, payload: str) -> bytes:
    import subprocess

    try:
        done = subprocess.run([f"docker-credential-{helper}", action], input=payload.encode(),
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandError(f"error getting credentials - err: {e}") from None
    if done.returncode != 0:
        raise CommandError(f"credential helper docker-credential-{helper} {action}: "
                           f"{(done.stdout or done.stderr).decode(errors='replace').strip()}")
    return done.stdout


def credentials(key: str) -> tuple[str, str] | None:
    config = _load()
    helper = _helper(config, key)
    if helper:
        try:
            found = fastjson.loads(_run_helper(helper, "get", key))
            if found.get("Username") or found.get("Secret"):
                return found.get("Username", ""), found.get("Secret", "")
        except (CommandError, ValueError, AttributeError):
            pass
    auths = config.get("auths") or {}
    entry = auths.get(key) or auths.get("https://" + key) or auths.get("http://" + key)
    if entry and entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
        return user, password
    return None


def registry_auth_header(reference_domain: str) -> str:
    """X-Registry-Auth: base64url of {"username","password","serveraddress"}, or `e30=` ({})."""
    key = DOCKER_HUB_SERVER if reference_domain == "docker.io" else reference_domain
    found = credentials(key)
    if not found:
        return "e30="
    auth = {"username": found[0], "password": found[1], "serveraddress": key}
    return base64.urlsafe_b64encode(gojson.dumps(auth).encode()).decode()


def _prompt(text: str, secret: bool) -> str:
    sys.stdout.write(text)
    sys.stdout.flush()
    if secret and os.isatty(0):
        import termios

        saved = termios.tcgetattr(0)
        changed = list(saved)
        changed[3] &= ~termios.ECHO
        termios.tcsetattr(0, termios.TCSANOW, changed)
        try:
            line = sys.stdin.readline()
        finally:
            termios.tcsetattr(0, termios.TCSANOW, saved)
            sys.stdout.write("\n")
    else:
        line = sys.stdin.readline()
    return line.rstrip("\r\n")


LOGIN_SPEC = Spec("login", "orlop login [OPTIONS] [SERVER]",
                  "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.", [
                      flag("-p, --password", "string", "Password or Personal Access Token (PAT)"),
                      flag("--password-stdin", "bool", "Take the Password or Personal Access Token (PAT) from stdin"),
                      flag("-u, --username", "string", "Username"),
                  ], max_args=1)


@command(LOGIN_SPEC)
def login(cli, opts, args):
    server = args[0] if args else None
    key = server_key(server)
    username, password = opts.username or "", opts.password or ""
    if opts.password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
        sys.stderr.flush()
    if opts.password_stdin:
        if opts.password:
            raise CommandError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CommandError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
        if not password:
            raise CommandError("Error: Non-null Password Required")
    if not username:
        username = _prompt("Username: ", False)
    if not username:
        raise CommandError("Error: Non-null Username Required")
    if not password:
        password = _prompt("Password: ", True)
    if not password:
        raise CommandError("Error: Non-null Password Required")
    answer = cli.client.post("/auth", body={"username": username, "password": password,
                                            "serveraddress": key}) or {}
    config = _load()
    helper = _helper(config, key)
    if helper:
        _run_helper(helper, "store", gojson.dumps({"ServerURL": key, "Username": username, "Secret": password}))
        config.setdefault("auths", {})[key] = {}
    else:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        config.setdefault("auths", {})[key] = {"auth": token}
        sys.stderr.write(f"WARNING! Your credentials are stored unencrypted in '{config_path()}'.\n"
                         "Configure a credential helper to remove this warning. See\n"
                         "https://docs.docker.com/go/credential-store/\n\n")
        sys.stderr.flush()
    _save(config)
    sys.stdout.write((answer.get("Status") or "Login Succeeded") + "\n")
    return 0


LOGOUT_SPEC = Spec("logout", "orlop logout [SERVER]",
                   "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
                   [], max_args=1)


@command(LOGOUT_SPEC)
def logout(cli, opts, args):
    key = server_key(args[0] if args else None)
    config = _load()
    auths = config.get("auths") or {}
    if key not in auths:
        sys.stdout.write(f"Not logged in to {key}\n")
        return 0
    sys.stdout.write(f"Removing login credentials for {key}\n")
    helper = _helper(config, key)
    if helper:
        try:
            _run_helper(helper, "erase", key)
        except CommandError as e:
            sys.stderr.write(f"WARNING: could not erase credentials:\n{key}: {e}\n")
    del auths[key]
    _save(config)
    return 0
