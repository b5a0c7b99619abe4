"""What a build step does to the image being built: the image as a value (`State`), the
commands that change only its config, and the two that make a layer — running a command
in a container of it (RUN) and copying files into it (COPY/ADD) — both on a fresh overlay
snapshot whose upper directory becomes the step's layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import shutil
import stat
import tarfile
import time

from orlop.build.layer import LayerBlob, store_layer
from orlop.containers import spec
from orlop.fsutil import write_atomic
from orlop.runtime.rootfs import resolve_in_root
from orlop.snapshots import chain_ids, mount_all
from orlop.snapshots.overlay import Mount

DEFAULT_SHELL = ["/bin/sh", "-c"]


class BuildError(Exception):
    """A step failed; the message is what the client shows."""


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class State:
    """An image during the build: its config JSON (config, rootfs.diff_ids, history), the
    descriptors of its layers' blobs, and the chain ID of its top snapshot."""

    def __init__(self, config: dict, layers: list[dict], chain: str | None, digest: str | None = None) -> None:
        self.config = config
        self.layers = layers
        self.chain = chain
        self.digest = digest  # the config blob's digest when it is an image's, unchanged

    @classmethod
    def scratch(cls) -> State:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        return cls({"architecture": arch, "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                    "history": []}, [], None)

    def child(self) -> State:
        return State(copy.deepcopy(self.config), list(self.layers), self.chain)

    @property
    def run_config(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.run_config.get("Env") or [] if "=" in e)

    def set_env(self, key: str, value: str) -> None:
        entries = [e for e in self.run_config.get("Env") or [] if e.split("=", 1)[0] != key]
        self.run_config["Env"] = [*entries, f"{key}={value}"]

    def record(self, created_by: str, empty_layer: bool) -> None:
        entry = {"created": now_rfc3339(), "created_by": created_by}
        if empty_layer:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)
        self.config["created"] = entry["created"]

    def add_layer(self, blob: LayerBlob) -> None:
        self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(blob.diff_id)
        self.layers.append(blob.descriptor())
        self.chain = chain_ids(self.config["rootfs"]["diff_ids"])[-1]

    def config_bytes(self) -> bytes:
        return json.dumps(self.config, separators=(",", ":"), sort_keys=True).encode()


class Workspace:
    """A writable snapshot on top of a state, mounted at a temporary root."""

    def __init__(self, snapshotter, parent: str | None, work_dir: str) -> None:
        self.snapshotter = snapshotter
        self.key = "build-" + secrets.token_hex(8)
        self.root = os.path.join(work_dir, self.key, "rootfs")
        self.bundle = os.path.dirname(self.root)
        os.makedirs(self.root)
        mount_all(snapshotter.prepare(self.key, parent), self.root)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            Mount.unmount(self.root)
            self.mounted = False

    def commit_layer(self, state: State, content) -> LayerBlob:
        """The snapshot's changes become `state`'s next layer (and a committed snapshot)."""
        self.unmount()
        blob = store_layer(self.snapshotter.upper_path(self.key), content)
        state.add_layer(blob)
        existing = {info.name for info in self.snapshotter.walk()}
        if state.chain in existing:
            self.snapshotter.remove(self.key)
        else:
            self.snapshotter.commit(state.chain, self.key)
        self.key = None
        return blob

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.unmount()
        if self.key is not None:
            with contextlib.suppress(Exception):
                self.snapshotter.remove(self.key)
        shutil.rmtree(self.bundle, ignore_errors=True)


async def run_command(state: State, argv: list[str], workspace: Workspace, runtime: str, runtime_root: str,
                      seccomp_profile: dict | None, extra_env: dict[str, str], emit) -> int:
    """Run `argv` in a container of `state` (the host's network, as a build container),
    streaming its output through `emit`; its exit status."""
    cid = "build-" + secrets.token_hex(6)
    cfg = state.run_config
    env = [*(cfg.get("Env") or []), *(f"{k}={v}" for k, v in extra_env.items())]
    record = {
        "Id": cid + "0" * (64 - len(cid)),
        "Config": {"Cmd": argv, "Entrypoint": None, "Env": env, "User": cfg.get("User") or "",
                   "WorkingDir": cfg.get("WorkingDir") or "/", "Tty": False, "Hostname": cid[:12]},
        "HostConfig": {"NetworkMode": "host", "IpcMode": "private", "ShmSize": 64 << 20, "CgroupnsMode": "host"},
    }
    # The build container's own copies of the host's resolver files: what a RUN writes to
    # them stays in the build (never in the host's files, never in the layer).
    files = {}
    for path in ("/etc/resolv.conf", "/etc/hosts"):
        if os.path.exists(path):
            files[path] = os.path.join(workspace.bundle, os.path.basename(path))
            shutil.copyfile(path, files[path])
    config = spec.generate(record, {}, workspace.root, files, seccomp_profile)
    workdir = resolve_in_root(workspace.root, config["process"]["cwd"])
    os.makedirs(workdir, exist_ok=True)  # Docker creates WORKDIR when it runs in it
    placeholders = _missing_paths(workspace.root, [m["destination"] for m in config["mounts"]])
    write_atomic(os.path.join(workspace.bundle, "config.json"), json.dumps(config).encode())
    proc = await asyncio.create_subprocess_exec(
        runtime, "--root", runtime_root, "run", "--bundle", workspace.bundle, cid,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        emit(line.decode(errors="replace"))
    code = await proc.wait()
    _remove_placeholders(workspace.root, placeholders)
    return code


def _missing_paths(root: str, destinations: list[str]) -> list[str]:
    """Every path (a mount point or a directory above one) that does not exist yet in the
    image and that the runtime will create to mount something there."""
    missing: set[str] = set()
    for destination in destinations:
        path = "/"
        for part in [p for p in destination.split("/") if p]:
            path = os.path.join(path, part)
            if path in missing or not os.path.lexists(resolve_in_root(root, path)):
                missing.add(path)
    return sorted(missing)


def _remove_placeholders(root: str, created: list[str]) -> None:
    """The mount points the runtime had to create (an image without /etc/hosts or /proc…)
    are not the step's doing: as Docker's init layer keeps them out of a commit, those still
    empty are removed again, deepest first."""
    for path in sorted(created, key=lambda p: p.count("/"), reverse=True):
        host = resolve_in_root(root, path)
        with contextlib.suppress(OSError):
            if os.path.isdir(host) and not os.path.islink(host):
                os.rmdir(host)  # only if empty
            elif os.path.isfile(host) and not os.path.islink(host) and os.path.getsize(host) == 0:
                os.unlink(host)


def copy_into(workspace: Workspace, sources: list[tuple[str, str]], dest: str, workdir: str,
              chown: tuple[int, int] | None, chmod: int | None, extract_archives: bool,
              not_extracted: frozenset[str] = frozenset()) -> None:
    """COPY/ADD: each (host path, name in the context) to `dest` in the image, resolved
    inside the image's root (its symlinks cannot lead out), as Docker's rules say: a
    directory's contents are copied, several sources need a directory destination."""
    target = dest if dest.startswith("/") else os.path.join(workdir or "/", dest)
    to_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
    uid, gid = chown or (0, 0)
    for source, name in sources:
        # A source is named as the Dockerfile names it: a symlink given as the source is
        # followed for its content but keeps its own name.
        base_name = os.path.basename(name.rstrip("/")) or os.path.basename(source)
        st = os.lstat(source)
        if stat.S_ISDIR(st.st_mode):
            base = resolve_in_root(workspace.root, target)
            _copy_tree(source, base, workspace.root, uid, gid, chmod)
            continue
        if extract_archives and source not in not_extracted and _is_archive(source):
            base = resolve_in_root(workspace.root, target)
            os.makedirs(base, exist_ok=True)
            _extract(source, base)
            continue
        path = os.path.join(target, base_name) if to_dir else target
        host = resolve_in_root(workspace.root, path)
        if os.path.isdir(host) and not os.path.islink(host):
            host = os.path.join(host, base_name)
        _make_parents(os.path.dirname(host), workspace.root, uid, gid)
        _copy_entry(source, host, uid, gid, chmod)


def _make_parents(path: str, root: str, uid: int, gid: int) -> None:
    missing = []
    while not os.path.exists(path) and path != root:
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        os.lchown(directory, uid, gid)


def _copy_entry(source: str, host: str, uid: int, gid: int, chmod: int | None) -> None:
    st = os.lstat(source)
    if os.path.lexists(host) and not os.path.isdir(host):
        os.unlink(host)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), host)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(source, host)
        os.chmod(host, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISDIR(st.st_mode):
        os.makedirs(host, exist_ok=True)
        os.chmod(host, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    else:
        return  # devices, sockets and fifos are not copied
    os.lchown(host, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_tree(source: str, base: str, root: str, uid: int, gid: int, chmod: int | None) -> None:
    _make_parents(base, root, uid, gid)
    if not os.path.isdir(base):
        os.makedirs(base, exist_ok=True)
    for directory, dirs, files in os.walk(source):
        dirs.sort()
        rel = os.path.relpath(directory, source)
        here = base if rel == "." else resolve_in_root(root, os.path.join(base[len(root):], rel))
        for name in sorted(dirs + files):
            _copy_entry(os.path.join(directory, name), os.path.join(here, name), uid, gid, chmod)


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _extract(archive: str, base: str) -> None:
    """ADD of a local tar (plain, gzip or zstd): unpacked with a layer's checks (nothing
    leaves `base`), its files' owners and modes kept."""
    from orlop.snapshots.unpack import unpack_layer

    scratch = base.rstrip("/") + ".orlop-add-" + secrets.token_hex(4)
    try:
        with open(archive, "rb") as f:
            unpack_layer(f, scratch, sync=False)
        shutil.copytree(scratch, base, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2)
        for directory, dirs, files in os.walk(scratch):
            for name in dirs + files:
                st = os.lstat(os.path.join(directory, name))
                os.lchown(os.path.join(base, os.path.relpath(directory, scratch), name), st.st_uid, st.st_gid)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
