"""Debian's docker-registry on 127.0.0.1 (a free port), with filesystem storage in a
temp dir, optionally behind htpasswd basic auth; stopped by the fixture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    def __init__(self, base: str, users: dict[str, str] | None = None, netns: str | None = None) -> None:
        """`netns`: a network namespace path to serve in (where a test's orlopd lives)."""
        self.base = base
        self.netns = netns
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.users = users or {}
        auth = ""
        if self.users:
            htpasswd = os.path.join(base, "htpasswd")
            for i, (user, password) in enumerate(self.users.items()):
                subprocess.run(["htpasswd", "-B", "-b", *([] if i else ["-c"]), htpasswd, user, password],
                               check=True, capture_output=True)
            auth = f"auth:\n  htpasswd:\n    realm: orlop-test\n    path: {htpasswd}\n"
        config = os.path.join(base, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: {self.host}\n{auth}")
        self.log = open(os.path.join(base, "registry.log"), "w")
        prefix = ["nsenter", f"--net={netns}", "--"] if netns else []
        self.proc = subprocess.Popen([*prefix, "docker-registry", "serve", config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(200):
            if self._answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not start: {open(self.log.name).read()[-2000:]}")

    def _answers(self) -> bool:
        if self.netns:
            probe = f"exec 3<>/dev/tcp/127.0.0.1/{self.port}"
            return subprocess.run(["nsenter", f"--net={self.netns}", "--", "bash", "-c", probe],
                                  capture_output=True).returncode == 0
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def push_archive(self, archive: str, name: str) -> str:
        """skopeo copy of a docker-archive into this registry; returns the manifest digest."""
        creds = []
        if self.users:
            user, password = next(iter(self.users.items()))
            creds = ["--dest-creds", f"{user}:{password}"]
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *creds,
                        f"docker-archive:{archive}", f"docker://{self.host}/{name}"], check=True, capture_output=True)
        inspect_creds = ["--creds", creds[1]] if creds else []
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", *inspect_creds,
                              "--format", "{{.Digest}}", f"docker://{self.host}/{name}"],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()
