"""The container's network as seen from inside its network namespace (interfaces and
addresses over netlink, read by a thread that enters the namespace: never a fork), with
the ports it publishes and the networks it is on."""

from __future__ import annotations

from orlop.network import links


def ports(record: dict) -> list[dict]:
    """Published ports: [{container_port, protocol, host_ip, host_port}], host_port None
    for an exposed port that is not published."""
    out = []
    for spec, bindings in sorted(((record.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        port, _, proto = spec.partition("/")
        for binding in bindings or [None]:
            out.append({"container_port": int(port) if port.isdigit() else port, "protocol": proto or "tcp",
                        "host_ip": binding.get("HostIp") if binding else None,
                        "host_port": int(binding["HostPort"]) if binding and str(binding.get("HostPort", "")).isdigit()
                        else None})
    return out


def networks(record: dict) -> list[dict]:
    out = []
    for name, ep in sorted(((record.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        ep = ep or {}
        out.append({"name": name, "ip_address": ep.get("IPAddress") or None,
                    "prefix_len": ep.get("IPPrefixLen") or None, "gateway": ep.get("Gateway") or None,
                    "mac_address": ep.get("MacAddress") or None})
    return out


def view(record: dict, host_pid: int | None, namespace_new: bool | None) -> dict:
    found = None
    error = None
    if host_pid:
        try:
            found = [{"name": i["ifname"], "index": i["index"], "kind": i["kind"], "state": i["state"],
                      "mtu": i["mtu"], "mac": i["mac"], "addresses": i["addresses"]}
                     for i in links.interfaces(f"/proc/{host_pid}/ns/net")]
        except Exception as e:  # noqa: BLE001 - netlink or setns failed: say so, explain the rest
            error = f"{type(e).__name__}: {e}"
    return {"mode": (record.get("HostConfig") or {}).get("NetworkMode"), "namespace_new": namespace_new,
            "interfaces": found, "error": error, "ports": ports(record), "networks": networks(record)}
