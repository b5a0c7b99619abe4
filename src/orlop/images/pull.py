"""Pull: resolve a reference to this platform's manifest and fetch what is missing.

Everything lands in the content store first (manifests, config, layers, each
verified against its digest); only then does the name point at it in the image
store. A pull killed half-way leaves committed blobs (reused by the next pull)
and resumable ingests, never a name pointing at missing content.

Progress is reported as events shaped like Docker's JSON progress stream
({"status": ..., "id": <short digest>, "progressDetail": {...}}), so the CLI can
draw bars and the daemon can forward them unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable

import aiohttp

from orlop.images.content import ContentStore
from orlop.images.reference import Reference
from orlop.images.registry import RegistryClient, RegistryError, docker_credentials
from orlop.images.store import ImageNotFound, ImageRecord, ImageStore

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
Progress = Callable[[dict], None]

# Concurrent pulls in this process share one download per blob.
_in_flight: dict[str, asyncio.Future] = {}


def host_platform() -> dict[str, str]:
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
    platform = {"os": "linux", "architecture": arch}
    if arch == "arm64":
        platform["variant"] = "v8"
    return platform


def parse_platform(text: str) -> dict[str, str]:
    """"linux/arm64/v8" -> {"os": "linux", "architecture": "arm64", "variant": "v8"}."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def select_manifest(index: dict, platform: dict[str, str]) -> dict:
    """The index entry for `platform` (a variant is matched only when asked for)."""
    for entry in index.get("manifests") or []:
        p = entry.get("platform") or {}
        if p.get("os") == platform["os"] and p.get("architecture") == platform["architecture"] and (
                "variant" not in platform or p.get("variant", platform["variant"]) == platform["variant"]):
            return entry
    offered = ", ".join("/".join(filter(None, (e.get("platform", {}).get("os"), e.get("platform", {}).get("architecture"),
                                               e.get("platform", {}).get("variant"))))
                        for e in index.get("manifests") or [])
    wanted = "/".join(filter(None, (platform["os"], platform["architecture"], platform.get("variant"))))
    raise LookupError(f"no matching manifest for {wanted} in the manifest list entries (offered: {offered})")


def _familiar_repository(ref: Reference) -> str:
    """"library/busybox" as Docker prints it in "Pulling from ..."."""
    familiar = ref.familiar.split("@", 1)[0]
    if ref.tag and familiar.endswith(":" + ref.tag):
        familiar = familiar[:-len(ref.tag) - 1]
    return familiar


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


async def pull(ref: Reference, content: ContentStore, images: ImageStore, *, platform: dict | None = None,
               credentials: tuple[str, str] | None = None, insecure_hosts: frozenset[str] = frozenset(),
               progress: Progress | None = None, concurrency: int = 3,
               prepare: Callable[[ImageRecord], Awaitable[None]] | None = None,
               mirrors: tuple[str, ...] = ()) -> ImageRecord:
    """`prepare(record)` (the daemon's unpack) runs before the name is given: a pull that
    cannot unpack (a full disk) names nothing. `mirrors` (daemon.json's registry-mirrors)
    are asked first for Docker Hub's images, anonymously, as dockerd asks them."""
    emit = progress or (lambda event: None)
    platform = platform or host_platform()
    credentials = credentials or docker_credentials(ref.domain)
    endpoints = [(host, None, plain) for host, plain in _mirror_hosts(mirrors)] if ref.domain == "docker.io" else []
    endpoints.append((ref.domain, credentials, False))
    for index, (host, creds, plain) in enumerate(endpoints):
        try:
            target, manifest_digest, config = await _download(
                ref, host, creds, insecure_hosts | {host} if plain else insecure_hosts, content, platform, emit,
                concurrency)
            break
        except (RegistryError, OSError, aiohttp.ClientError):
            if index == len(endpoints) - 1:
                raise
            # a mirror that fails or lacks the image: the next one, then Docker Hub itself (as dockerd)
    try:
        previous = images.get(str(ref))
    except ImageNotFound:
        previous = None
    if previous is not None and previous.target == target:
        record = previous
    else:
        record = ImageRecord(str(ref), target, manifest_digest, config["digest"], distributed=True)
    if prepare is not None:
        await prepare(record)
    if record is not previous:
        images.put(record)
    emit({"status": f"Digest: {target}"})
    if record is previous:
        emit({"status": f"Status: Image is up to date for {ref.familiar}"})
    else:
        emit({"status": f"Status: Downloaded newer image for {ref.familiar}"})
    return record


async def _download(ref: Reference, host: str, credentials, insecure_hosts: frozenset[str], content: ContentStore,
                    platform: dict, emit: Progress, concurrency: int) -> tuple[str, str, dict]:
    """The image's manifest (or index), config and layers from `host` into the content store:
    (the digest the name resolved to, the platform's manifest digest, its config descriptor)."""
    repo = ref.path
    async with RegistryClient(host, credentials=credentials, insecure_hosts=insecure_hosts) as client:
        media_type, body, target = await client.get_manifest(repo, ref.digest or ref.tag)
        # Once the registry answered, as dockerd says it (a registry that cannot be reached is
        # then an error response, not a stream that failed).
        emit({"status": f"Pulling from {_familiar_repository(ref)}", "id": ref.tag or ref.digest})
        content.put(body, target)
        manifest_digest = target
        if media_type in INDEX_TYPES:
            entry = select_manifest(json.loads(body), platform)
            manifest_digest = entry["digest"]
            if not content.exists(manifest_digest):
                _, body, _ = await client.get_manifest(repo, manifest_digest)
                content.put(body, manifest_digest)
            body = content.read(manifest_digest)
        manifest = json.loads(body)
        config = manifest["config"]
        semaphore = asyncio.Semaphore(concurrency)
        await _fetch_once(client, repo, config, content, semaphore, lambda event: None)
        await asyncio.gather(*(_fetch_once(client, repo, layer, content, semaphore, emit)
                               for layer in manifest["layers"]))
    return target, manifest_digest, config


def _mirror_hosts(mirrors) -> list[tuple[str, bool]]:
    """daemon.json's registry-mirrors ("https://mirror.example", "http://localhost:5000"):
    (host, plain HTTP) of each."""
    import urllib.parse

    found = []
    for mirror in mirrors or ():
        url = urllib.parse.urlparse(mirror if "://" in mirror else "https://" + mirror)
        if url.netloc:
            found.append((url.netloc, url.scheme == "http"))
    return found


async def _fetch_once(client: RegistryClient, repo: str, descriptor: dict, content: ContentStore,
                      semaphore: asyncio.Semaphore, emit: Progress) -> None:
    """Fetch a blob unless it is stored; pulls in this process share one download of it, and
    pulls in other processes wait on its ingest lock."""
    digest, size, layer_id = descriptor["digest"], descriptor.get("size"), short_id(descriptor["digest"])
    if content.exists(digest):
        emit({"status": "Already exists", "id": layer_id})
        return
    shared = _in_flight.get(digest)
    if shared is not None:
        await shared
        emit({"status": "Already exists", "id": layer_id})
        return
    future = asyncio.get_running_loop().create_future()
    _in_flight[digest] = future
    try:
        emit({"status": "Pulling fs layer", "id": layer_id})
        async with semaphore:
            def report(current: int) -> None:
                emit({"status": "Downloading", "id": layer_id,
                      "progressDetail": {"current": current, "total": size}})

            writer = await content.writer(f"blob-{digest}", digest, size).open_async()
            try:
                if not writer.committed:
                    await client.fetch_blob(repo, digest, writer, report)
            finally:
                writer.__exit__(None, None, None)
        emit({"status": "Download complete", "id": layer_id})
        future.set_result(None)
    except BaseException as e:
        future.set_exception(e)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
        raise
    finally:
        del _in_flight[digest]
