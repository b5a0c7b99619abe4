"""Shared fixtures: busybox bundles and runtimes (orlop-runtime, runc, crun) each
with their own --root, whose containers are always deleted after the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from busybox_bundle import make_bundle, make_rootfs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORLOP_RUNTIME = os.path.join(REPO, ".venv", "bin", "orlop-runtime")
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")


class Runtime:
    """An OCI runtime binary with a private state root."""

    def __init__(self, name: str, binary: str, root: str) -> None:
        self.name = name
        self.binary = binary
        self.root = root

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run a runtime command. Output goes through files, not pipes: a created or
        detached container inherits them and would hold a pipe open for its lifetime."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            done = subprocess.run(self.cmd(*args), timeout=timeout, check=False, **kw)
            out.seek(0)
            err.seek(0)
            done.stdout, done.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} exited {done.returncode}:\n"
                                 f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    def cleanup(self) -> None:
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            subprocess.run(self.cmd("delete", "--force", cid), capture_output=True, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory) -> str:
    """busybox, plus /bin/probe (tests/probe/probe.c, built static) to make single syscalls."""
    path = str(tmp_path_factory.mktemp("template") / "rootfs")
    make_rootfs(path)
    probe_source = os.path.join(os.path.dirname(__file__), "probe", "probe.c")
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(path, "bin", "probe"), probe_source], check=True)
    return path


@pytest.fixture
def bundle_factory(tmp_path, rootfs_template):
    counter = iter(range(1000))

    def factory(args: list[str], config: dict | None = None) -> str:
        return make_bundle(str(tmp_path / f"bundle{next(counter)}"), args, rootfs_template, config)

    return factory


def _runtime(name: str, tmp_path) -> Runtime:
    binary = ORLOP_RUNTIME if name == "orlop-runtime" else shutil.which(name)
    if not binary:
        pytest.skip(f"{name} is not installed")
    return Runtime(name, binary, str(tmp_path / f"state-{name}"))


@pytest.fixture
def runtime(tmp_path):
    rt = _runtime("orlop-runtime", tmp_path)
    yield rt
    rt.cleanup()


@pytest.fixture
def runc(tmp_path):
    rt = _runtime("runc", tmp_path)
    yield rt
    rt.cleanup()


@pytest.fixture
def container_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]
