"""/images/*, /auth: the image endpoints of the Engine API over the image library."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import json
import re

from aiohttp import ClientError, web

from orlop.api.common import boolean, json_body, json_response, label_matches, query_filters
from orlop.api.images_io import BodyReader, ResponseWriter
from orlop.api.streams import JsonLines
from orlop.containers import logs as container_logs
from orlop.containers.events import Events
from orlop.containers.logs import entry_time
from orlop.errors import (
    DISK_FULL,
    Conflict,
    InvalidParameter,
    NotFound,
    OrlopError,
    Unauthorized,
    describe_os_error,
)
from orlop.images import archive, manage
from orlop.images.progress import with_progress_field
from orlop.images.reference import parse
from orlop.images.registry import RegistryError
from orlop.images.service import ImageService
from orlop.images.store import ImageNotFound, ImageRecord


def registry_auth(request: web.Request) -> tuple[str, str] | None:
    """X-Registry-Auth: base64url JSON {"username", "password"} (or an identity token)."""
    header = request.headers.get("X-Registry-Auth")
    if not header:
        return None
    try:
        auth = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return None
    if isinstance(auth, dict) and auth.get("username"):
        return auth["username"], auth.get("password", "")
    return None


def _created(config_created: str) -> int:
    try:
        return int(entry_time(config_created.replace("+00:00", "Z"))) if config_created else 0
    except (ValueError, IndexError):
        return 0


def _familiar(name: str) -> str:
    try:
        return parse(name).familiar
    except ValueError:
        return name


def image_summaries(images: ImageService, used: dict[str, list[str]]) -> list[dict]:
    """The images as GET /images/json lists them (`used`: image ID -> containers)."""
    return [{
        "Containers": len(used.get(entry["Id"], [])), "Created": _created(entry["Created"]),
        "Id": entry["Id"], "Labels": None, "ParentId": "",
        "RepoDigests": [_familiar(d) for d in entry["RepoDigests"]],
        "RepoTags": [_familiar(t) for t in entry["RepoTags"]], "SharedSize": -1,
        "Size": entry["Size"], "VirtualSize": entry["Size"]}
        for entry in manage.list_images(images.images, images.content)]


class ImageRoutes:
    def __init__(self, images: ImageService, events: Events, used_images) -> None:
        self.images = images
        self.events = events
        self.used_images = used_images

    def register(self, add) -> None:
        add("POST", "/images/create", self.create)
        add("GET", "/images/json", self.list)
        add("GET", "/images/search", self.search)
        add("GET", "/distribution/{name:.+}/json", self.distribution)
        add("POST", "/images/prune", self.prune)
        add("POST", "/images/load", self.load)
        add("GET", "/images/get", self.save_many)
        add("GET", "/images/{name:.+}/json", self.inspect)
        add("GET", "/images/{name:.+}/history", self.history)
        add("GET", "/images/{name:.+}/get", self.save_one)
        add("POST", "/images/{name:.+}/tag", self.tag)
        add("POST", "/images/{name:.+}/push", self.push)
        add("DELETE", "/images/{name:.+}", self.remove)
        add("POST", "/auth", self.auth)

    async def create(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("fromImage")
        if not name:
            return await self._import(request)
        tag = request.query.get("tag")
        if tag:
            name = f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
        ref = self.images.normalise(name)
        stream = JsonLines(request)
        credentials = registry_auth(request)

        loop = asyncio.get_running_loop()

        def progress(event: dict) -> None:  # also called from the unpacking thread
            loop.call_soon_threadsafe(queue.put_nowait, with_progress_field(event))

        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(self.images.pull(ref, request.query.get("platform"), credentials, progress))
        first = True
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await stream.send(getter.result())
                first = False
                continue
            getter.cancel()
            await asyncio.sleep(0)  # events handed over with call_soon_threadsafe land first
            while not queue.empty():
                await stream.send(queue.get_nowait())
            break
        try:
            record = task.result()
        except RegistryError as e:
            if first and not stream.started:
                raise NotFound(str(e)) if e.status == 404 else Unauthorized(str(e)) if e.status == 401 \
                    else InvalidParameter(str(e)) from None
            await stream.error(str(e))
            return stream.response
        except (OSError, ValueError, LookupError) as e:
            disk_full = isinstance(e, OSError) and e.errno in DISK_FULL
            if not stream.started:
                if disk_full:
                    raise
                raise NotFound(str(e)) if isinstance(e, LookupError) else InvalidParameter(str(e)) from None
            await stream.error(describe_os_error(e) if disk_full else str(e))
            return stream.response
        self.events.emit("image", "pull", record.name, {"name": record.name})
        await stream.start()
        await stream.response.write_eof()
        return stream.response

    async def list(self, request: web.Request) -> web.Response:
        out = image_summaries(self.images, self.used_images())
        filters = query_filters(request)
        for key in filters:
            if key not in ("reference", "dangling", "label", "before", "since"):
                raise InvalidParameter(f"invalid filter '{key}'")
        if filters.get("reference"):
            patterns = [w if ":" in w.rsplit("/", 1)[-1] else w + ":*" for w in filters["reference"]]
            for entry in out:  # only the matching names are listed, as moby does
                entry["RepoTags"] = [t for t in entry["RepoTags"] if any(fnmatch.fnmatchcase(t, p) for p in patterns)]
            out = [e for e in out if e["RepoTags"]]
        if filters.get("dangling"):
            dangling = str(filters["dangling"][0]).lower() in ("true", "1")
            out = [e for e in out if (not e["RepoTags"]) == dangling]
        if filters.get("label"):
            labels_of = {e["Id"]: (self.images.config(self.images.resolve(e["Id"])).get("config") or {}).get("Labels")
                         or {} for e in out}
            out = [e for e in out if all(label_matches(labels_of[e["Id"]], f) for f in filters["label"])]
        for key, newer in (("before", False), ("since", True)):
            if filters.get(key):
                pivot = _created(self.images.config(self.images.resolve(filters[key][0])).get("created", ""))
                out = [e for e in out if (e["Created"] > pivot if newer else e["Created"] < pivot)]
        return json_response(sorted(out, key=lambda e: e["Created"], reverse=True))

    async def inspect(self, request: web.Request) -> web.Response:
        try:
            record = self.images.resolve(request.match_info["name"])
        except NotFound as e:  # dockerd 20.10's words
            raise NotFound(f"no such image: {request.match_info['name']}: {e}") from None
        shown = manage.inspect(record, self.images.images, self.images.content)
        shown["RepoTags"] = [_familiar(t) for t in shown["RepoTags"]]
        shown["RepoDigests"] = [_familiar(d) for d in shown["RepoDigests"]]
        shown.update(Parent="", Comment="", DockerVersion="", VirtualSize=shown["Size"],
                     GraphDriver={"Name": "overlay2", "Data": {}}, Metadata={"LastTagTime": "0001-01-01T00:00:00Z"})
        return json_response(shown)

    async def history(self, request: web.Request) -> web.Response:
        record = self.images.resolve(request.match_info["name"])
        rows = manage.history(record, self.images.content)
        out = []
        for i, row in enumerate(rows):
            out.append({"Id": record.config if i == 0 else "<missing>", "Created": _created(row["Created"]),
                        "CreatedBy": row["CreatedBy"], "Tags": None, "Size": row["Size"], "Comment": row["Comment"]})
        return json_response(out)

    async def tag(self, request: web.Request) -> web.Response:
        record = self.images.resolve(request.match_info["name"])
        repo = request.query.get("repo")
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        target = parse(f"{repo}:{request.query.get('tag') or 'latest'}")
        manage.tag(self.images.images, record.name, target)
        self.events.emit("image", "tag", record.config, {"name": str(target)})
        return web.Response(status=201)

    async def remove(self, request: web.Request) -> web.Response:
        """`rmi name` untags it (deleting the image with its last name); `rmi <id>` removes every
        name, which needs force when there are several. A container's image needs force too."""
        name = request.match_info["name"]
        force = boolean(request, "force")
        record = self.images.resolve(name)
        names = [r.name for r in self.images.images.list() if r.config == record.config]
        by_id = record.config.startswith(name if name.startswith("sha256:") else "sha256:" + name)
        tags = [n for n in names if "@" not in n]
        if by_id and len(tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {record.config[7:19]} (must be forced) - image is "
                           f"referenced in multiple repositories")
        # Without another tag, the image goes (with its digest references), as in Docker.
        deletes_image = by_id or not [t for t in tags if t != record.name]
        targets = names if deletes_image else [record.name]
        users = self.used_images().get(record.config, [])
        if users and not force and deletes_image:
            raise Conflict(f"conflict: unable to delete {record.config[7:19]} (must be forced) - image is being "
                           f"used by stopped container {users[0][:12]}" if by_id else
                           f"conflict: unable to remove repository reference \"{name}\" (must force) - "
                           f"container {users[0][:12]} is using its referenced image {record.config[7:19]}")
        deleted = []
        blobs, chains = manage.references(record, self.images.content)
        for target in targets:
            try:
                events = manage.remove(self.images.images, target, force=True)
            except ImageNotFound as e:
                raise NotFound(str(e)) from None
            for event in events:
                kind, _, value = event.partition(": ")
                deleted.append({kind: _familiar(value) if kind == "Untagged" else value})
        if any("Deleted" in entry for entry in deleted):  # its layers go too, unless shared
            await asyncio.to_thread(manage.release, self.images.images, self.images.content,
                                    self.images.snapshotter, blobs, chains)
        self.events.emit("image", "delete", record.config, {"name": record.name})
        return json_response(deleted)

    async def prune(self, request: web.Request) -> web.Response:
        """`image prune`: the dangling images no container uses (dangling=false, as `-a`
        sends it: every image no container uses), narrowed by until= and label=/label!=;
        each removed with its names, then what only they used is freed."""
        filters = query_filters(request)
        for key in filters:
            if key not in ("dangling", "until", "label", "label!"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling_only = (filters.get("dangling") or ["true"])[-1].lower() not in ("false", "0")
        until = container_logs.parse_time(filters["until"][-1]) if filters.get("until") else None
        used = self.used_images()
        by_config: dict[str, list[ImageRecord]] = {}
        for record in self.images.images.list():
            by_config.setdefault(record.config, []).append(record)
        deleted, blobs, chains = [], set(), set()
        for config, records in sorted(by_config.items()):
            if config in used or (dangling_only and not all(r.dangling for r in records)):
                continue
            image_config = self.images.config(records[0])
            labels = (image_config.get("config") or {}).get("Labels") or {}
            if until is not None and _created(image_config.get("created") or "") >= until:
                continue
            if not all(label_matches(labels, f) for f in filters.get("label", [])) or \
                    any(label_matches(labels, f) for f in filters.get("label!", [])):
                continue
            for record in records:
                found = manage.references(record, self.images.content)
                blobs |= found[0]
                chains |= found[1]
                for event in manage.remove(self.images.images, record.name, force=True):
                    kind, _, value = event.partition(": ")
                    deleted.append({kind: _familiar(value) if kind == "Untagged" else value})
            self.events.emit("image", "delete", config, {"name": records[0].name})
        freed = await asyncio.to_thread(manage.release, self.images.images, self.images.content,
                                        self.images.snapshotter, blobs, chains)
        self.events.emit("image", "prune", "", {"reclaimed": str(freed)})
        return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": freed})

    async def distribution(self, request: web.Request) -> web.Response:
        from orlop.images.distribution import inspect

        ref = parse(self.images.normalise(request.match_info["name"]))
        try:
            found = await inspect(ref, self.images.content, registry_auth(request), self.images.insecure_hosts)
        except RegistryError as e:
            if e.status == 404:
                raise NotFound(str(e)) from None
            if e.status == 401:
                raise Unauthorized(str(e)) from None
            raise OrlopError(str(e)) from None
        except (OSError, ClientError) as e:  # the registry cannot be reached
            raise OrlopError(f"{ref.domain}: {e}") from None
        return json_response(found)

    async def search(self, request: web.Request) -> web.Response:
        from orlop.images.search import search, split_term

        term = request.query.get("term") or ""
        if not term:
            raise InvalidParameter("a search term is required")
        try:
            limit = int(request.query.get("limit") or 25)
        except ValueError:
            raise InvalidParameter(f"invalid limit {request.query.get('limit')!r}") from None
        if not 1 <= limit <= 100:
            raise InvalidParameter(f"Limit {limit} is outside the range of [1, 100]")
        filters = query_filters(request)
        for key, values in filters.items():
            if key not in ("is-official", "stars", "is-automated"):
                raise InvalidParameter(f"invalid filter '{key}'")
            if key == "stars" and not all(v.isdigit() for v in values):
                raise InvalidParameter(f"invalid filter 'stars={values[0]}'")
        try:
            found = await search(term, limit, filters, self.images.insecure_hosts,
                                 registry_auth(request) or None)
        except RegistryError as e:
            host = split_term(term)[0]
            raise OrlopError(f"{e} ({host})") from None
        return json_response(found)

    async def push(self, request: web.Request) -> web.StreamResponse:
        from orlop.images.push import push

        name = request.match_info["name"]
        tag = request.query.get("tag")
        full = f"{name}:{tag}" if tag else name
        ref = parse(full)
        try:
            record = self.images.resolve(full)
        except NotFound:  # as dockerd says it, in the push's stream
            stream = JsonLines(request)
            await stream.send({"status": f"The push refers to repository [{ref.name}]"})
            shown = _familiar(name) if ":" in name.rsplit("/", 1)[-1] else _familiar(name).removesuffix(":latest")
            await stream.error(f"An image does not exist locally with the tag: {shown}")
            return stream.response
        stream = JsonLines(request)
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(push(record, ref, self.images.content, credentials=registry_auth(request),
                                        insecure_hosts=self.images.insecure_hosts,
                                        progress=lambda e: queue.put_nowait(with_progress_field(e))))
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await stream.send(getter.result())
            else:
                getter.cancel()
        try:
            digest = task.result()
        except (RegistryError, OSError, ValueError) as e:
            await stream.error(str(e))
            return stream.response
        size = len(self.images.content.read(record.manifest))
        if not record.distributed and "@" not in record.name:
            record.distributed = True  # now it has a digest in that registry (a RepoDigest)
            self.images.images.put(record)
        await stream.send({"progressDetail": {}, "aux": {"Tag": ref.tag or "latest", "Digest": digest, "Size": size}})
        self.events.emit("image", "push", str(ref), {"name": str(ref)})
        await stream.response.write_eof()
        return stream.response

    # -- save, load, import: the library in a thread, streamed from and to the client ----------

    def _save_targets(self, name: str) -> list[tuple[ImageRecord, str | None]]:
        """What `docker save <name>` saves, as dockerd: an ID or a digest reference saves the
        image without a name, a repository without a tag every tag of it, name:tag that one."""
        if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", name) or "@" in name:
            return [(self.images.resolve(name), None)]
        last = name.rsplit("/", 1)[-1]
        if ":" not in last:
            try:
                repository = parse(name).name
            except ValueError:
                repository = None
            tagged = [(r, r.name) for r in self.images.images.list()
                      if not r.dangling and "@" not in r.name and r.name.rsplit(":", 1)[0] == repository]
            if tagged:
                return tagged
        try:
            record = self.images.resolve(name)
        except NotFound:  # a repository: dockerd names it as given
            raise NotFound(f"No such image: {name}") from None
        return [(record, record.name if not record.dangling and record.name == self._normalised(name) else None)]

    def _normalised(self, name: str) -> str | None:
        try:
            return self.images.normalise(name)
        except InvalidParameter:
            return None

    async def _save(self, request: web.Request, names: list[str]) -> web.StreamResponse:
        if not names:
            raise InvalidParameter("no images to save: give one or more names")
        images: dict[str, tuple[ImageRecord, list[str]]] = {}   # by image ID, in the order asked
        for name in names:
            for record, tag in self._save_targets(name):
                _, tags = images.setdefault(record.config, (record, []))
                if tag and tag not in tags:
                    tags.append(tag)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        writer = ResponseWriter(response, asyncio.get_running_loop())

        def save() -> None:
            archive.save(list(images.values()), self.images.content, writer)
            writer.flush()

        await asyncio.to_thread(save)   # a failure now can only cut the stream short, as dockerd's
        for record, _ in images.values():
            self.events.emit("image", "save", record.config, {"name": record.name})
        await response.write_eof()
        return response

    async def save_one(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, [request.match_info["name"]])

    async def save_many(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, request.query.getall("names", []))

    async def load(self, request: web.Request) -> web.StreamResponse:
        """The archive is read as it arrives (docker-save, old or new, or an OCI layout; maybe
        compressed), into the content store; names are given only once all of it is checked."""
        body = BodyReader(request.content, asyncio.get_running_loop())
        try:
            loaded = await asyncio.to_thread(archive.load, body, self.images.content, self.images.images,
                                             normalise=self.images.normalise)
        except (archive.ArchiveError, InvalidParameter) as e:
            raise InvalidParameter(f"invalid image archive: {e}") from None
        stream = JsonLines(request)
        for entry in loaded:
            if entry.replaced:
                await stream.send({"stream": f"The image {_familiar(entry.name)} already exists, renaming the old "
                                             f"one with ID {entry.replaced} to empty string\n"})
            line = f"Loaded image: {_familiar(entry.name)}\n" if entry.name else f"Loaded image ID: {entry.image_id}\n"
            await stream.send({"stream": line})
            self.events.emit("image", "load", entry.image_id, {"name": entry.name or entry.image_id})
        await stream.start()
        await stream.response.write_eof()
        return stream.response

    async def _import(self, request: web.Request) -> web.StreamResponse:
        """POST /images/create?fromSrc=-|URL&repo=&tag=&message=&changes=…: `docker import`.
        As dockerd: the body (or the URL's content) is the tar; the reply one status line, the ID."""
        from orlop.images.changes import ChangeError
        from orlop.images.importer import import_rootfs
        from orlop.images.pull import parse_platform

        source = request.query.get("fromSrc")
        if not source:
            raise InvalidParameter("give fromImage (to pull) or fromSrc (to import)")
        name = None
        try:
            if request.query.get("repo"):
                ref = parse(request.query["repo"])
                if ref.digest:
                    raise InvalidParameter("cannot import digest reference")
                name = str(ref.with_tag(request.query["tag"]) if request.query.get("tag") else ref)
            platform = parse_platform(request.query["platform"]) if request.query.get("platform") else None
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        message = request.query.get("message") or f"Imported from {source}"
        loop = asyncio.get_running_loop()
        stream = JsonLines(request)
        session = None
        try:
            if source == "-":
                body = BodyReader(request.content, loop)
            else:
                import aiohttp

                url = source if "://" in source else "http://" + source
                session = aiohttp.ClientSession()
                remote = await session.get(url)
                if remote.status != 200:
                    raise InvalidParameter(f"Get \"{url}\": {remote.status} {remote.reason}")
                await stream.send({"status": f"Downloading from {url}"})
                body = BodyReader(remote.content, loop)
            record = await asyncio.to_thread(
                import_rootfs, body, self.images.content, self.images.images, name=name,
                changes=request.query.getall("changes", []), message=message, platform=platform,
                snapshotter=self.images.snapshotter)
        except (archive.ArchiveError, ChangeError, InvalidParameter, OSError) as e:
            if not stream.started:
                raise InvalidParameter(str(e)) from None
            await stream.error(str(e))
            return stream.response
        finally:
            if session is not None:
                await session.close()
        self.events.emit("image", "import", record.config, {"name": name or record.config})
        await stream.send({"status": record.config})
        await stream.response.write_eof()
        return stream.response

    async def auth(self, request: web.Request) -> web.Response:
        from orlop.images.login import LoginError, check_credentials

        body = await json_body(request)
        try:
            await check_credentials(body.get("serveraddress"), body.get("username", ""), body.get("password", ""),
                                    insecure_hosts=self.images.insecure_hosts)
        except LoginError as e:
            raise Unauthorized(str(e)) from None
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})
