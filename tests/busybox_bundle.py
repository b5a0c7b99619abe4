"""OCI bundles built from Debian's busybox-static: the rootfs of tests, benchmarks
and the hello-world demo. Importable from tests and bench (no pytest needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"


def make_rootfs(rootfs: str) -> None:
    """A minimal root filesystem: busybox and a symlink per applet, /etc/passwd and group."""
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "home"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")


def default_config() -> dict:
    from orlop.oci.default_spec import default_spec

    return default_spec()


def make_bundle(bundle: str, args: list[str], template: str | None = None, config: dict | None = None) -> str:
    """Write bundle/config.json running `args` (no terminal) and bundle/rootfs, hard-linked
    from `template` when given (fast), else built afresh."""
    os.makedirs(bundle, exist_ok=True)
    rootfs = os.path.join(bundle, "rootfs")
    if template:
        subprocess.run(["cp", "-a", "--link", template, rootfs], check=True)
    else:
        make_rootfs(rootfs)
    config = config or default_config()
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["root"] = {"path": "rootfs", "readonly": config.get("root", {}).get("readonly", False)}
    write_config(bundle, config)
    return bundle


def write_config(bundle: str, config: dict) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def read_config(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)
