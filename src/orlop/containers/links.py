"""Legacy links (`--link name[:alias]`) on the default bridge, as dockerd makes them (moby
daemon/links): the linked container's address in /etc/hosts under the alias, its id and
its name, and the environment Docker's early tutorials read (DB_NAME, DB_PORT_5432_TCP…,
DB_ENV_…). Links are stored as Docker shows them: "/target:/container/alias"."""

from __future__ import annotations

from orlop.errors import Conflict, InvalidParameter


def parse(link: str) -> tuple[str, str]:
    """"name:alias" or "name" (the alias is the name), leading slashes dropped."""
    name, _, alias = link.partition(":")
    name = name.lstrip("/")
    alias = (alias or name).rsplit("/", 1)[-1]
    if not name or not alias:
        raise InvalidParameter(f"invalid link: {link!r} (expected name:alias)")
    return name, alias


def normalise(links: list[str], container_name: str, find) -> list[str]:
    """HostConfig.Links of a create request, each target checked to exist (`find(name)`
    returns its record or raises), stored as "/target:/container/alias"."""
    stored = []
    for link in links or []:
        name, alias = parse(link)
        try:
            target = find(name)
        except Exception:  # a 400, not a 404: the docker CLI would look for the image instead
            raise InvalidParameter(f"could not get container for {name}: No such container: {name}") from None
        stored.append(f"{target['Name']}:/{container_name.lstrip('/')}/{alias}")
    return stored


def _bridge_address(target: dict) -> str:
    return ((target["NetworkSettings"].get("Networks") or {}).get("bridge") or {}).get("IPAddress") or ""


def resolve(record: dict, find) -> list[tuple[str, dict]]:
    """(alias, running target record) of each link; a target that is not running stops the
    start, with dockerd's message."""
    found = []
    for link in record["HostConfig"].get("Links") or []:
        target_name, _, path = link.partition(":")
        alias = path.rsplit("/", 1)[-1] if path else target_name.lstrip("/")
        try:
            target = find(target_name.lstrip("/"))
        except Exception:
            raise InvalidParameter(f"could not get container for {target_name.lstrip('/')}") from None
        if not target["State"]["Running"]:
            raise Conflict(f"Cannot link to a non running container: {target['Name']} AS "
                           f"{record['Name']}/{alias}")
        found.append((alias, target))
    return found


def hosts_lines(links: list[tuple[str, dict]]) -> str:
    lines = []
    for alias, target in links:
        address = _bridge_address(target)
        if address:
            names = [alias, target["Id"][:12], target["Name"].lstrip("/")]
            lines.append(address + "\t" + " ".join(dict.fromkeys(names)))
    return "".join(line + "\n" for line in lines)


def _ports(target: dict) -> list[tuple[int, str]]:
    found = []
    for key in (target["Config"].get("ExposedPorts") or {}):
        port, _, proto = key.partition("/")
        if port.isdigit():
            found.append((int(port), proto or "tcp"))
    return sorted(found)


def environment(record: dict, links: list[tuple[str, dict]]) -> list[str]:
    """The variables a link gives the linking container (its own -e still win)."""
    env = []
    for alias, target in links:
        prefix = alias.upper().replace("-", "_")
        address = _bridge_address(target)
        env.append(f"{prefix}_NAME={record['Name']}/{alias}")
        ports = _ports(target)
        if ports and address:
            env.append(f"{prefix}_PORT={ports[0][1]}://{address}:{ports[0][0]}")
        for port, proto in ports if address else []:
            key = f"{prefix}_PORT_{port}_{proto.upper()}"
            env += [f"{key}={proto}://{address}:{port}", f"{key}_ADDR={address}", f"{key}_PORT={port}",
                    f"{key}_PROTO={proto}"]
        for entry in target["Config"].get("Env") or []:
            name, eq, value = entry.partition("=")
            if eq and name not in ("HOME", "PATH"):
                env.append(f"{prefix}_ENV_{name}={value}")
    return env
