"""`GET /distribution/{name}/json` (docker-py's `images.get_registry_data`, `docker
manifest`-style lookups): what a registry says a name points to, without pulling it: the
descriptor of its manifest or index, and the platforms it is there for."""

from __future__ import annotations

import asyncio
import json

from orlop.images.content import ContentStore
from orlop.images.pull import INDEX_TYPES, _fetch_once
from orlop.images.reference import Reference
from orlop.images.registry import RegistryClient, docker_credentials

_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant")


def _platform(source: dict) -> dict:
    return {key: source[key] for key in _PLATFORM_KEYS if source.get(key)}


async def inspect(ref: Reference, content: ContentStore, credentials: tuple[str, str] | None = None,
                  insecure_hosts: frozenset[str] = frozenset()) -> dict:
    credentials = credentials or docker_credentials(ref.domain)
    async with RegistryClient(ref.domain, credentials=credentials, insecure_hosts=insecure_hosts) as client:
        media_type, body, digest = await client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
        document = json.loads(body)
        if media_type in INDEX_TYPES or "manifests" in document:
            platforms = [_platform(m.get("platform") or {}) for m in document.get("manifests") or []
                         if m.get("platform")]
        else:  # one image: its platform is in its config (fetched into the content store)
            await _fetch_once(client, ref.path, document["config"], content, asyncio.Semaphore(1), lambda e: None)
            platforms = [_platform(json.loads(content.read(document["config"]["digest"])))]
    return {"Descriptor": {"mediaType": media_type, "digest": digest, "size": len(body)}, "Platforms": platforms}
