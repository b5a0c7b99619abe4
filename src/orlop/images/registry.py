"""A client for the OCI Distribution API (Docker Registry HTTP API v2), on aiohttp.

Authentication follows the registry's challenge: a 401 names the scheme in
WWW-Authenticate. For `Bearer realm=…,service=…,scope=…` a token is fetched from
the realm (with the user's credentials, if any, as basic auth) and reused for
that scope until it expires; for `Basic` the credentials are sent directly.
Plain HTTP is used for localhost, 127.0.0.0/8, ::1 and hosts marked insecure;
HTTPS with the system CA store otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import re
import time

import aiohttp

from orlop.images.content import DigestMismatch, Writer

DOCKER_HUB_HOST = "registry-1.docker.io"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_RETRIES = 4


class RegistryError(Exception):
    """An error answer of a registry, with its HTTP status and the registry's error code."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def is_insecure_host(host: str, insecure: frozenset[str] | set[str] = frozenset()) -> bool:
    """localhost, loopback addresses and the user's --insecure-registry hosts speak plain HTTP."""
    if host in insecure:
        return True
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.index("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def _error_message(status: int, body: bytes, what: str) -> RegistryError:
    try:
        errors = json.loads(body).get("errors") or []
        if errors:
            first = errors[0]
            return RegistryError(status, f"{what}: {first.get('message') or first.get('code')}", first.get("code", ""))
    except (ValueError, AttributeError):
        pass
    return RegistryError(status, f"{what}: HTTP {status}")


class RegistryClient:
    """One registry host. Open with `async with RegistryClient(host) as client`."""

    def __init__(self, host: str, *, credentials: tuple[str, str] | None = None, insecure: bool | None = None,
                 insecure_hosts: frozenset[str] = frozenset()) -> None:
        self.host = DOCKER_HUB_HOST if host in ("docker.io", "index.docker.io") else host
        plain = insecure if insecure is not None else is_insecure_host(self.host, insecure_hosts)
        self.base = f"{'http' if plain else 'https'}://{self.host}/v2/"
        self.credentials = credentials
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expiry)
        self._basic = False
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RegistryClient:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "orlop/0.1"})
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session:
            await self._session.close()

    # -- authentication ------------------------------------------------------------------------
    def _auth_headers(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        if self._basic and self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    async def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise RegistryError(401, f"unauthorized: {self.host} requires a login (docker login / orlop login "
                                         f"{self.host})")
            self._basic = True  # (a refusal of the retry is reported by _request)
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(401, f"{self.host}: unsupported authentication challenge {challenge!r}")
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        auth = aiohttp.BasicAuth(*self.credentials) if self.credentials else None
        async with self._session.get(params["realm"], params=query, auth=auth) as response:
            body = await response.read()
            if response.status != 200:
                raise _error_message(response.status, body, f"{self.host}: getting a token for {scope or 'the registry'}")
        answer = json.loads(body)
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise RegistryError(401, f"{self.host}: the token server sent no token")
        lifetime = max(int(answer.get("expires_in") or 60), 60)
        self._tokens[scope] = (token, time.monotonic() + lifetime - 10)

    async def _request(self, method: str, url: str, scope: str, *, headers: dict | None = None,
                       data=None, allow_redirects: bool = True) -> aiohttp.ClientResponse:
        """Send, answering at most one authentication challenge; the caller releases the response."""
        for attempt in range(2):
            try:
                response = await self._session.request(method, url,
                                                       headers={**(headers or {}), **self._auth_headers(scope)},
                                                       data=data, allow_redirects=allow_redirects)
            except aiohttp.ClientConnectorError as e:  # worded as dockerd's Go client words it
                errno_ = getattr(e.os_error, "errno", None)
                reason = os.strerror(errno_).lower() if errno_ else str(e.os_error or e)
                raise RegistryError(502, f'{method.capitalize()} "{url}": dial tcp '
                                         f'{e.host}:{e.port}: connect: {reason}') from None
            if response.status != 401:
                return response
            if attempt == 1:  # refused even after answering the challenge
                response.release()
                raise RegistryError(401, f"{self.host}: the user name or password was refused" if self.credentials
                                    else f"{self.host}: access denied ({scope or 'registry'}); log in with "
                                         f"`orlop login {self.host}`", "UNAUTHORIZED")
            challenge = response.headers.get("WWW-Authenticate", "")
            response.release()
            self._tokens.pop(scope, None)
            await self._authenticate(challenge, scope)
        raise AssertionError("unreachable")

    def _url(self, path: str) -> str:
        return self.base + path

    async def ping(self) -> None:
        response = await self._request("GET", self.base, "")
        async with response:
            if response.status != 200:
                raise _error_message(response.status, await response.read(), f"{self.host}: ping")

    # -- manifests -----------------------------------------------------------------------------
    async def get_manifest(self, repo: str, reference: str) -> tuple[str, bytes, str]:
        """(media type, bytes, digest) of a manifest or index, by tag or digest."""
        response = await self._request("GET", self._url(f"{repo}/manifests/{reference}"), f"repository:{repo}:pull",
                                       headers={"Accept": ", ".join(MANIFEST_TYPES)})
        async with response:
            body = await response.read()
            if response.status == 404:
                raise RegistryError(404, f"manifest for {self.host}/{repo}:{reference} not found: manifest unknown",
                                    "MANIFEST_UNKNOWN")
            if response.status != 200:
                raise _error_message(response.status, body, f"{self.host}/{repo}:{reference}")
            media_type = response.headers.get("Content-Type", "").split(";")[0]
        from orlop.images.content import sha256_digest

        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(502, f"{self.host}/{repo}: manifest has digest {digest}, asked for {reference}")
        if not media_type or media_type == "application/json":
            media_type = json.loads(body).get("mediaType", MANIFEST_TYPES[2])
        return media_type, body, digest

    async def put_manifest(self, repo: str, reference: str, media_type: str, body: bytes) -> str:
        response = await self._request("PUT", self._url(f"{repo}/manifests/{reference}"),
                                       f"repository:{repo}:pull,push", headers={"Content-Type": media_type},
                                       data=body)
        async with response:
            if response.status not in (200, 201):
                raise _error_message(response.status, await response.read(), f"pushing manifest {repo}:{reference}")
            return response.headers.get("Docker-Content-Digest", "")

    # -- blobs ---------------------------------------------------------------------------------
    async def fetch_blob(self, repo: str, digest: str, writer: Writer, progress=None) -> None:
        """Download into `writer` (resuming at writer.offset), verifying the digest; retried
        with Range requests when the connection breaks."""
        scope = f"repository:{repo}:pull"
        for attempt in range(_RETRIES + 1):
            headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
            try:
                response = await self._request("GET", self._url(f"{repo}/blobs/{digest}"), scope, headers=headers)
                async with response:
                    if response.status == 200 and writer.offset:
                        writer.truncate()  # the server ignored Range: start over
                    elif response.status not in (200, 206):
                        raise _error_message(response.status, await response.read(), f"blob {digest} of {repo}")
                    async for chunk in response.content.iter_chunked(1 << 20):
                        writer.write(chunk)
                        if progress:
                            progress(writer.offset)
                writer.commit()
                return
            except DigestMismatch:
                if attempt == _RETRIES:  # commit() started the write over; fetch it again
                    raise
            except (TimeoutError, aiohttp.ClientError) as e:
                if attempt == _RETRIES:
                    raise RegistryError(0, f"downloading {digest} from {self.host}/{repo}: {e}") from None
            await asyncio.sleep(0.2 * 2 ** attempt)

    async def blob_exists(self, repo: str, digest: str) -> bool:
        response = await self._request("HEAD", self._url(f"{repo}/blobs/{digest}"), f"repository:{repo}:pull,push")
        async with response:
            return response.status == 200

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount: the registry links a blob it has under another name."""
        scope = f"repository:{repo}:pull,push repository:{from_repo}:pull"
        response = await self._request("POST", self._url(f"{repo}/blobs/uploads/?mount={digest}&from={from_repo}"),
                                       scope, allow_redirects=False)
        async with response:
            if response.status == 201:
                return True
            if response.status == 202:  # not mounted: an upload session was opened instead; drop it
                location = response.headers.get("Location")
                if location:
                    (await self._request("DELETE", self._absolute(location), scope)).release()
            return False

    def _absolute(self, location: str) -> str:
        return location if location.startswith("http") else self.base[:-len("/v2/")] + location

    async def upload_blob(self, repo: str, digest: str, path: str, chunk_size: int | None = None,
                          progress=None) -> None:
        """Upload a blob from a file: in one PUT, or in PATCH chunks of `chunk_size`."""
        scope = f"repository:{repo}:pull,push"
        response = await self._request("POST", self._url(f"{repo}/blobs/uploads/"), scope)
        async with response:
            if response.status != 202:
                raise _error_message(response.status, await response.read(), f"starting upload of {digest}")
            location = self._absolute(response.headers["Location"])
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if chunk_size:
                offset = 0
                while offset < size:
                    chunk = f.read(chunk_size)
                    headers = {"Content-Type": "application/octet-stream",
                               "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                    response = await self._request("PATCH", location, scope, headers=headers, data=chunk)
                    async with response:
                        if response.status != 202:
                            raise _error_message(response.status, await response.read(), f"uploading {digest}")
                        location = self._absolute(response.headers["Location"])
                    offset += len(chunk)
                    if progress:
                        progress(offset)
                body = b""
            else:
                body = f.read()
        separator = "&" if "?" in location else "?"
        response = await self._request("PUT", f"{location}{separator}digest={digest}", scope,
                                       headers={"Content-Type": "application/octet-stream"}, data=body)
        async with response:
            if response.status != 201:
                raise _error_message(response.status, await response.read(), f"finishing upload of {digest}")
        if progress and not chunk_size:
            progress(size)


def docker_credentials(host: str, config_path: str | None = None) -> tuple[str, str] | None:
    """The user's credentials for `host` from ~/.docker/config.json: `auths` entries, or a
    credential helper (`credHelpers[host]`, else `credsStore`) run as docker-credential-<name>."""
    path = config_path or os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"),
                                       "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    keys = [host] + (["https://index.docker.io/v1/", "docker.io", "index.docker.io"]
                     if host in ("docker.io", DOCKER_HUB_HOST, "index.docker.io") else [])
    helper = next((config.get("credHelpers", {}).get(k) for k in keys if k in config.get("credHelpers", {})),
                  config.get("credsStore"))
    if helper:
        found = _from_helper(helper, keys[-3] if len(keys) > 1 else host)
        if found:
            return found
    for key in keys:
        entry = (config.get("auths") or {}).get(key) or (config.get("auths") or {}).get(f"https://{key}")
        if entry and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
    return None


def _from_helper(helper: str, server: str) -> tuple[str, str] | None:
    import subprocess

    try:
        done = subprocess.run([f"docker-credential-{helper}", "get"], input=server.encode(), capture_output=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    answer = json.loads(done.stdout)
    return answer.get("Username", ""), answer.get("Secret", "")
