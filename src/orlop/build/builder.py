"""Docker's classic builder: a Dockerfile's stages, step by step, each step's result an
image (config in the content store, layer as a committed snapshot), reused from the cache
when its parent, its instruction and what it copies are unchanged.

Messages go through `emit(dict)` in the shape of dockerd's build stream
({"stream": "Step 2/5 : RUN …\\n"}, {"aux": {"ID": …}}), so that the API only forwards them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import tempfile

from orlop.build import context as build_context
from orlop.build import dockerfile, ignore, steps
from orlop.build.cache import BuildCache
from orlop.build.steps import DEFAULT_SHELL, BuildError, State, Workspace
from orlop.images.store import ImageRecord, dangling_name

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
METADATA = {"ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "USER", "WORKDIR", "STOPSIGNAL", "SHELL",
            "HEALTHCHECK", "ONBUILD", "MAINTAINER", "ARG"}
# Build args Docker lets through without a matching ARG, and keeps out of the image.
PREDEFINED_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                   "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class Options:
    def __init__(self, tags=(), dockerfile_name="Dockerfile", build_args=None, no_cache=False, pull=False,
                 labels=None, target=None, quiet=False, credentials=None) -> None:
        self.tags = list(tags)
        self.dockerfile = dockerfile_name or "Dockerfile"
        self.build_args = dict(build_args or {})
        self.no_cache = no_cache
        self.pull = pull
        self.labels = dict(labels or {})
        self.target = target
        self.quiet = quiet
        self.credentials = credentials  # registry → (user, password), for FROM pulls


class Builder:
    def __init__(self, images, runtime: str, runtime_root: str, work_dir: str, seccomp_profile: dict | None) -> None:
        self.images = images
        self.content = images.content
        self.snapshotter = images.snapshotter
        self.runtime = runtime
        self.runtime_root = runtime_root
        self.work_dir = work_dir
        self.seccomp_profile = seccomp_profile
        self.cache = BuildCache(os.path.join(os.path.dirname(images.content.root), "build-cache.json"))

    def reclaim(self) -> list[str]:
        """At orlopd's start, what builds a crash interrupted left: their RUN containers
        (killed), mounted workspaces, writable snapshots and spooled contexts. The names of
        what was removed."""
        import subprocess

        from orlop.linux import procfs
        from orlop.snapshots import ACTIVE, Mount

        removed = []
        if os.path.isdir(self.runtime_root):
            for cid in os.listdir(self.runtime_root):
                if cid.startswith("build-"):
                    subprocess.run([self.runtime, "--root", self.runtime_root, "delete", "--force", cid],
                                   capture_output=True, check=False)
                    removed.append(cid)
        if os.path.isdir(self.work_dir):
            prefix = os.path.realpath(self.work_dir) + "/"
            for mount in reversed(procfs.read_mountinfo("self")):
                if mount["mount_point"].startswith(prefix):
                    with contextlib.suppress(OSError):
                        Mount.unmount(mount["mount_point"], detach=True)
            for name in os.listdir(self.work_dir):
                path = os.path.join(self.work_dir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)  # a spooled context
                removed.append(name)
        for info in list(self.snapshotter.walk()):
            if info.kind == ACTIVE and info.name.startswith("build-"):
                self.snapshotter.remove(info.name)
                removed.append(info.name)
        return removed

    # -- the whole build -------------------------------------------------------------------------
    async def build(self, context_tar: str, options: Options, emit) -> str:
        """Build from a tar context (a file); the image ID (also tagged as asked)."""
        os.makedirs(self.work_dir, exist_ok=True)
        ctx = tempfile.mkdtemp(prefix="context-", dir=self.work_dir)
        try:
            await asyncio.to_thread(_extract_file, context_tar, ctx)
            text = self._read_dockerfile(ctx, options.dockerfile)
            # What .dockerignore excludes is gone before the first step (a client may send
            # it anyway), the Dockerfile and .dockerignore too when they are excluded.
            matcher = ignore.load(ctx)
            if matcher:
                await asyncio.to_thread(build_context.prune, ctx, matcher)
            image_id = await self._build_stages(text, ctx, options, emit)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
        return image_id

    @staticmethod
    def _read_dockerfile(ctx: str, name: str) -> str:
        """The Dockerfile, found in the context as the classic builder finds it (symlinks
        followed, never out of the context)."""
        try:
            path = build_context.resolve(ctx, name)
        except build_context.ContextError:
            path = None
        if path is None or not os.path.isfile(path):
            raise BuildError(f"Cannot locate specified Dockerfile: {name}")
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    async def _build_stages(self, text: str, ctx: str, options: Options, emit) -> str:
        meta_args, stages = dockerfile.parse(text)
        if options.target:
            names = [s.name for s in stages]
            if options.target not in names:
                raise BuildError(f"failed to reach build target {options.target} in Dockerfile")
            stages = stages[:names.index(options.target) + 1]
        total = sum(1 + len(s.instructions) for s in stages)
        global_args = {}
        for inst in meta_args:
            for key, default in dockerfile.key_values(inst, {}):
                global_args[key] = options.build_args.get(key, default or "")
        used_args = set(global_args) | PREDEFINED_ARGS
        results: dict[str, State] = {}
        step = 0
        state = State.scratch()
        for stage in stages:
            step += 1
            base = dockerfile.expand(stage.base, global_args)
            emit({"stream": f"Step {step}/{total} : {stage.from_line.original}\n"})
            state = await self._from(base, results, options, emit)
            emit({"stream": f" ---> {short(self._config_digest(state))}\n"})
            args: dict[str, str] = {}
            for inst in self._with_onbuild(state, stage.instructions):
                step += 1
                emit({"stream": f"Step {step}/{total} : {inst.original}\n"})
                for warning in inst.warnings:
                    emit({"stream": f"[Warning] line {inst.line}: {warning}\n"})
                state = await self._step(state, inst, args, global_args, options, ctx, results, emit)
                used_args.update(args)
            if stage.name:
                results[stage.name.lower()] = state
            results[str(stage.index)] = state
        unused = sorted(set(options.build_args) - used_args)
        if unused:
            emit({"stream": f"[Warning] One or more build-args {unused} were not consumed\n"})
        if options.labels:
            state = state.child()
            state.run_config["Labels"] = {**(state.run_config.get("Labels") or {}), **options.labels}
        return self._finish(state, options, emit)

    def _with_onbuild(self, state: State, instructions: list) -> list:
        triggers = state.run_config.get("OnBuild") or []
        if not triggers:
            return instructions
        state.run_config["OnBuild"] = None  # the child image does not inherit them
        state.digest = None
        parsed = []
        for trigger in triggers:
            _, stages = dockerfile.parse(f"FROM scratch\n{trigger}\n")
            parsed += stages[0].instructions
        return parsed + instructions

    async def _from(self, base: str, results: dict[str, State], options: Options, emit) -> State:
        if base.lower() in results:
            return results[base.lower()].child()
        if base == "scratch":
            return State.scratch()
        record = None
        if not options.pull:
            with contextlib.suppress(Exception):
                record = self.images.resolve(base)
        if record is None:
            try:
                record = await self.images.pull(self.images.normalise(base), None,
                                                _credentials_for(base, options.credentials),
                                                lambda event: None)
            except Exception as e:
                raise BuildError(f"pull access denied or image not found for {base}: {e}") from None
        config = json.loads(self.content.read(record.config))
        manifest = json.loads(self.content.read(record.manifest))
        chain = await self.images.unpacked(record)
        return State(config, list(manifest.get("layers") or []), chain, digest=record.config)

    # -- one instruction -----------------------------------------------------------------------
    async def _step(self, state: State, inst, args: dict, global_args: dict, options: Options, ctx: str,
                    results: dict, emit) -> State:
        env = {**args, **state.env()}
        keyword = inst.keyword
        if keyword == "ARG":
            for key, default in dockerfile.key_values(inst, env):
                if default is None:
                    default = global_args.get(key)
                args[key] = options.build_args.get(key, default if default is not None else "")
            return state
        if keyword in METADATA:
            new = state.child()
            created_by = self._metadata(new, inst, env)
            key = self.cache.key(self._config_digest(state), created_by, json.dumps(new.config, sort_keys=True))
            hit = self._cache_hit(key, options, emit)
            if hit is not None:
                return hit
            new.record(created_by, empty_layer=True)
            config = self._store_config(new)
            self.cache.put(key, {"config": config, "layers": new.layers, "chain": new.chain})
            emit({"stream": f" ---> {short(config)}\n"})
            return new
        if keyword == "RUN":
            return await self._run(state, inst, args, options, emit)
        if keyword in ("COPY", "ADD"):
            return await self._copy(state, inst, env, options, ctx, results, emit)
        raise BuildError(f"Unknown instruction: {keyword}")

    def _metadata(self, state: State, inst, env: dict[str, str]) -> str:
        cfg = state.run_config
        keyword = inst.keyword
        if keyword == "ENV":
            for key, value in dockerfile.key_values(inst, env):
                state.set_env(key, value or "")
                env[key] = value or ""
        elif keyword == "LABEL":
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(dockerfile.key_values(inst, env))}
        elif keyword in ("CMD", "ENTRYPOINT"):
            command = inst.json if inst.json is not None else [*(cfg.get("Shell") or DEFAULT_SHELL), inst.args]
            cfg["Cmd" if keyword == "CMD" else "Entrypoint"] = command
            if keyword == "ENTRYPOINT":
                cfg["Cmd"] = None  # Docker resets CMD when ENTRYPOINT is set
        elif keyword == "EXPOSE":
            ports = cfg.get("ExposedPorts") or {}
            for port in dockerfile.words(inst, env):
                ports[port if "/" in port else f"{port}/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif keyword == "VOLUME":
            volumes = cfg.get("Volumes") or {}
            for path in dockerfile.words(inst, env):
                volumes[path] = {}
            cfg["Volumes"] = volumes
        elif keyword == "USER":
            cfg["User"] = dockerfile.expand(inst.args, env)
        elif keyword == "WORKDIR":
            path = dockerfile.expand(inst.args, env)
            cfg["WorkingDir"] = os.path.normpath(os.path.join(cfg.get("WorkingDir") or "/", path))
        elif keyword == "STOPSIGNAL":
            cfg["StopSignal"] = dockerfile.expand(inst.args, env)
        elif keyword == "SHELL":
            if inst.json is None:
                raise BuildError(f"SHELL requires the arguments to be in JSON form (line {inst.line})")
            cfg["Shell"] = inst.json
        elif keyword == "HEALTHCHECK":
            cfg["Healthcheck"] = dockerfile.healthcheck(inst)
        elif keyword == "ONBUILD":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), inst.args]
        elif keyword == "MAINTAINER":
            state.config["author"] = inst.args
        return f"/bin/sh -c #(nop) {_nop_text(inst)}"

    def _cache_hit(self, key: str, options: Options, emit) -> State | None:
        if options.no_cache:
            return None
        hit = self.cache.get(key)
        if hit is None or not self.content.exists(hit["config"]) or (
                hit["chain"] and hit["chain"] not in {i.name for i in self.snapshotter.walk()}):
            return None
        emit({"stream": " ---> Using cache\n"})
        emit({"stream": f" ---> {short(hit['config'])}\n"})
        return State(json.loads(self.content.read(hit["config"])), hit["layers"], hit["chain"])

    async def _run(self, state: State, inst, args: dict, options: Options, emit) -> State:
        cfg = state.run_config
        for name in ("mount", "network", "security", "device"):
            if name in inst.flags:
                raise BuildError(f"the --{name} option requires BuildKit. Refer to "
                                 "https://docs.docker.com/go/buildkit/ to learn how to build images with "
                                 "BuildKit enabled")
        argv = inst.json if inst.json is not None else \
            [*(cfg.get("Shell") or DEFAULT_SHELL), dockerfile.shell_command(inst)]
        used = {k: v for k, v in args.items() if k not in PREDEFINED_ARGS}
        prefix = f"|{len(used)} " + " ".join(f"{k}={v}" for k, v in sorted(used.items())) + " " if used else ""
        created_by = prefix + (" ".join(argv) if inst.json is None else json.dumps(argv))
        key = self.cache.key(self._config_digest(state), created_by, "")
        hit = self._cache_hit(key, options, emit)
        if hit is not None:
            return hit
        new = state.child()
        workspace = Workspace(self.snapshotter, state.chain, self.work_dir)
        container = workspace.key[6:18]
        try:
            emit({"stream": f" ---> Running in {container}\n"})
            code = await steps.run_command(new, argv, workspace, self.runtime, self.runtime_root,
                                           self.seccomp_profile, args, lambda line: emit({"stream": line}))
            if code != 0:
                shown = json.dumps(argv) if inst.json is not None else " ".join(argv)
                raise BuildError(f"The command '{shown}' returned a non-zero code: {code}")
            workspace.commit_layer(new, self.content)
        finally:
            workspace.discard()
        new.record(created_by, empty_layer=False)
        config = self._store_config(new)
        self.cache.put(key, {"config": config, "layers": new.layers, "chain": new.chain})
        emit({"stream": f" ---> Removed intermediate container {container}\n"})
        emit({"stream": f" ---> {short(config)}\n"})
        return new

    async def _copy(self, state: State, inst, env: dict, options: Options, ctx: str, results: dict,
                    emit) -> State:
        patterns, inline, dest = dockerfile.sources_and_dest(inst, env)
        source_root, view, scratch = ctx, None, None
        from_name = inst.flags.get("from")
        try:
            if from_name:
                source_root, view = await self._source_root(from_name, results, options)
            urls = [p for p in patterns if p.startswith(("http://", "https://"))]
            if urls and inst.keyword != "ADD":
                raise BuildError(f"source can't be a URL for COPY (line {inst.line})")
            if urls or inline:
                # Downloads and heredoc sources are files of their own, never unpacked.
                scratch = tempfile.mkdtemp(prefix="sources-", dir=self.work_dir)
                patterns = [p for p in patterns if p not in urls]
                extra = [await _download(url, scratch) for url in urls] + [_write_inline(scratch, n, body)
                                                                           for n, body in inline]
            sources = build_context.copy_sources(source_root, patterns) if patterns else []
            if scratch is not None:
                sources += build_context.copy_sources(scratch, extra)
            # Files from the context become root's (or --chown's), so only their content and
            # mode matter; from a stage or an image the owners are copied too.
            checksum = build_context.checksum(source_root, [s for s in sources], owners=bool(from_name))
            chown = _chown(dockerfile.flag(inst, "chown", env), state, self)
            chmod_text = dockerfile.flag(inst, "chmod", env)
            try:
                chmod = int(chmod_text, 8) if chmod_text else None
            except ValueError:
                raise BuildError(f"invalid chmod parameter: {chmod_text!r} (line {inst.line})") from None
            created_by = f"/bin/sh -c #(nop) {inst.keyword} {'dir' if len(sources) > 1 else 'file'}:" \
                         f"{checksum.split(':')[-1]} in {dest} "
            key = self.cache.key(self._config_digest(state), created_by, json.dumps([chown, chmod]))
            hit = self._cache_hit(key, options, emit)
            if hit is not None:
                return hit
            new = state.child()
            workspace = Workspace(self.snapshotter, state.chain, self.work_dir)
            try:
                downloaded = frozenset(path for path, _ in sources if scratch and path.startswith(scratch + "/"))
                steps.copy_into(workspace, sources, dest, new.run_config.get("WorkingDir") or "/", chown, chmod,
                                extract_archives=inst.keyword == "ADD", not_extracted=downloaded)
                workspace.commit_layer(new, self.content)
            finally:
                workspace.discard()
        finally:
            if view is not None:
                view.discard()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        new.record(created_by, empty_layer=False)
        config = self._store_config(new)
        self.cache.put(key, {"config": config, "layers": new.layers, "chain": new.chain})
        emit({"stream": f" ---> {short(config)}\n"})
        return new

    async def _source_root(self, name: str, results: dict, options: Options):
        """COPY --from: a stage's result, or an image, mounted read-only for the copy."""
        state = results.get(name.lower()) or await self._from(name, results, options, lambda e: None)
        view = Workspace(self.snapshotter, state.chain, self.work_dir)
        return view.root, view

    # -- results ---------------------------------------------------------------------------------
    @staticmethod
    def _config_digest(state: State) -> str:
        """The image ID of a step's parent, for the cache key and the messages (stored only
        when it is a step's result: a parent alone leaves nothing behind)."""
        return state.digest or "sha256:" + hashlib.sha256(state.config_bytes()).hexdigest()

    def _store_config(self, state: State) -> str:
        if state.digest:
            return state.digest  # an image's own config, as it is
        data = state.config_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.content.exists(digest):
            self.content.put(data, digest)
        return digest

    def _finish(self, state: State, options: Options, emit) -> str:
        config = self._store_config(state)
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "size": len(state.config_bytes()), "digest": config},
                    "layers": state.layers}
        data = json.dumps(manifest, separators=(",", ":")).encode()
        manifest_digest = self.content.put(data)
        emit({"aux": {"ID": config}})
        if options.quiet:
            emit({"stream": f"{config}\n", "quiet": True})  # the one line `build -q` shows
        else:
            emit({"stream": f"Successfully built {short(config)}\n"})
        names = [self.images.normalise(tag) for tag in options.tags]
        for name in names or [dangling_name(config)]:
            self.images.images.put(ImageRecord(name, manifest_digest, manifest_digest, config))
        for tag in options.tags:
            if not options.quiet:
                emit({"stream": f"Successfully tagged {tag if ':' in tag.rsplit('/', 1)[-1] else tag + ':latest'}\n"})
        return config


async def _download(url: str, directory: str) -> str:
    """ADD <url>: the file, named after the URL's last path element, mode 0600 and the
    server's Last-Modified time, as Docker does; its name in `directory`."""
    import email.utils
    import urllib.parse

    import aiohttp

    name = os.path.basename(urllib.parse.urlparse(url).path) or "index.html"
    path = os.path.join(directory, name)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise BuildError(f"failed to GET {url} with status {response.status}: {response.reason}")
                with open(path, "wb") as f:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        f.write(chunk)
                modified = response.headers.get("Last-Modified")
    except aiohttp.ClientError as e:
        raise BuildError(f"failed to GET {url}: {e}") from None
    os.chmod(path, 0o600)
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            stamp = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (stamp, stamp))
    return name


def _write_inline(directory: str, name: str, body: str) -> str:
    """A heredoc source of COPY/ADD (<<EOF), as a file named after its marker."""
    if "/" in name or name in (".", ".."):
        raise BuildError(f"invalid heredoc name {name!r}")
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        f.write(body)
    os.chmod(os.path.join(directory, name), 0o644)
    return name


def _extract_file(path: str, dest: str) -> None:
    with open(path, "rb") as f:
        build_context.extract(f, dest)


def _nop_text(inst) -> str:
    if inst.json is not None and inst.keyword in ("CMD", "ENTRYPOINT", "SHELL"):
        return f"{inst.keyword} {json.dumps(inst.json)}"
    if inst.keyword in ("CMD", "ENTRYPOINT"):
        return f'{inst.keyword} ["/bin/sh" "-c" {json.dumps(inst.args)}]'
    return f"{inst.keyword} {inst.args}"


def _chown(value: str | None, state: State, builder: Builder) -> tuple[int, int] | None:
    """--chown=user[:group] as numbers (names are looked up in the image's passwd/group)."""
    if not value:
        return None
    user, _, group = value.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        return int(user), int(group or user)
    if state.chain is None:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: {value} (scratch image)")
    view = Workspace(builder.snapshotter, state.chain, builder.work_dir)
    try:
        from orlop.containers.spec import resolve_user

        resolved = resolve_user(view.root, value)
        return resolved["uid"], resolved["gid"]
    except Exception as e:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: {e}") from None
    finally:
        view.discard()


def _credentials_for(name: str, credentials: dict | None):
    if not credentials:
        return None
    host = name.split("/", 1)[0] if "/" in name and ("." in name.split("/", 1)[0] or ":" in name.split("/", 1)[0]) \
        else "https://index.docker.io/v1/"
    entry = credentials.get(host) or credentials.get(host.removeprefix("https://"))
    if entry and entry.get("username"):
        return entry["username"], entry.get("password", "")
    return None

