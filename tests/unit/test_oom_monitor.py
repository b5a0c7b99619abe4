"""The daemon's OOM monitor on a fake v1 memory cgroup: the eventfd it registers through
cgroup.event_control is signalled by the test as the kernel would, with the kill counted a
little later (as the kernel does), and each kill reaches the loop once."""

from __future__ import annotations

import asyncio
import os

from orlop.containers import oom_monitor
from orlop.shim import oom


def test_each_kill_is_reported_once_even_when_counted_after_the_wakeup(tmp_path, monkeypatch):
    control = tmp_path / "memory.oom_control"
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (tmp_path / "cgroup.event_control").write_text("")
    monkeypatch.setattr(oom, "counter_file", lambda pid: str(control))

    async def scenario() -> tuple[list[str], int, int]:
        seen: list[str] = []
        monitor = oom_monitor.OomMonitor(lambda cid: seen.append(cid) or True)
        monitor.watch("c1", 1234)
        efd = int((tmp_path / "cgroup.event_control").read_text().split()[0])
        os.eventfd_write(efd, 1)              # the kernel: "out of memory" ...
        await asyncio.sleep(0.05)
        control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")  # ... then the kill is counted
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        os.eventfd_write(efd, 1)              # a wake-up without a new kill: nothing
        await asyncio.sleep(0.1)
        reported = monitor.unwatch("c1")
        control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n")
        return seen, reported, monitor.unwatch("c1")

    seen, reported, again = asyncio.run(scenario())
    assert seen == ["c1"], "kills before the watch began (2) are not reported, the new one once"
    assert reported == 1 and again == 0


def test_no_memory_cgroup_no_watch(monkeypatch):
    monkeypatch.setattr(oom, "counter_file", lambda pid: None)

    async def scenario() -> int:
        monitor = oom_monitor.OomMonitor(lambda cid: True)
        monitor.watch("c1", 1)
        return len(monitor.watches)

    assert asyncio.run(scenario()) == 0
