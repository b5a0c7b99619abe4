"""Push: send an image's blobs and manifest to a registry.

Blobs the registry already has are skipped (HEAD); a blob it has in another
repository of the same registry is mounted instead of uploaded (when the image
came from there); the rest are uploaded, in one request or in chunks. The
manifest goes last, so a registry never serves a manifest with missing blobs.
"""

from __future__ import annotations

import asyncio
import json

from orlop.images.content import ContentStore
from orlop.images.pull import Progress, short_id
from orlop.images.reference import Reference
from orlop.images.registry import RegistryClient, docker_credentials
from orlop.images.store import ImageRecord

MANIFEST_MEDIA_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json")


async def push(record: ImageRecord, ref: Reference, content: ContentStore, *,
               credentials: tuple[str, str] | None = None, insecure_hosts: frozenset[str] = frozenset(),
               mount_from: str | None = None, chunk_size: int | None = None, progress: Progress | None = None,
               concurrency: int = 3) -> str:
    """Push the image `record` as `ref`; returns the manifest digest the registry reports."""
    emit = progress or (lambda event: None)
    body = content.read(record.manifest)
    manifest = json.loads(body)
    media_type = manifest.get("mediaType") or MANIFEST_MEDIA_TYPES[0]
    repo = ref.path
    credentials = credentials or docker_credentials(ref.domain)
    emit({"status": f"The push refers to repository [{ref.name}]"})
    async with RegistryClient(ref.domain, credentials=credentials, insecure_hosts=insecure_hosts) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def send(descriptor: dict) -> None:
            digest, layer_id = descriptor["digest"], short_id(descriptor["digest"])
            async with semaphore:
                if await client.blob_exists(repo, digest):
                    emit({"status": "Layer already exists", "id": layer_id})
                    return
                if mount_from and mount_from != repo and await client.mount_blob(repo, digest, mount_from):
                    emit({"status": f"Mounted from {mount_from}", "id": layer_id})
                    return
                emit({"status": "Preparing", "id": layer_id})

                def report(current: int) -> None:
                    emit({"status": "Pushing", "id": layer_id,
                          "progressDetail": {"current": current, "total": descriptor.get("size")}})

                await client.upload_blob(repo, digest, content.path(digest), chunk_size, report)
                emit({"status": "Pushed", "id": layer_id})

        await asyncio.gather(*(send(d) for d in [*manifest["layers"], manifest["config"]]))
        reported = await client.put_manifest(repo, ref.tag or ref.digest or "latest", media_type, body)
    digest = reported or record.manifest
    emit({"status": f"{ref.tag or 'latest'}: digest: {digest} size: {len(body)}"})
    return digest
