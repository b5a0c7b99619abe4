"""The embedded DNS server of a user-defined network (Docker's 127.0.0.11): containers
on the network resolve each other's names and aliases to their addresses on it; every
other name is forwarded to the host's resolvers.

Each network's server listens on its gateway address, port 53, in the host's namespace,
and the network's containers get that address in /etc/resolv.conf. (Docker listens on
127.0.0.11 inside every container's namespace and redirects port 53 there with rules in
that namespace; a listener on the gateway needs neither, and it can forward to a host
resolver on 127.0.0.x, which a container cannot reach.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger("orlopd")
TTL = 600
FORWARD_TIMEOUT = 3.0


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path) as f:
            found = [line.split()[1] for line in f if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        found = []
    return [ip for ip in found if ":" not in ip] or ["8.8.8.8", "8.8.4.4"]


class _Server(asyncio.DatagramProtocol):
    def __init__(self, lookup: Callable[[str], list[str]], upstreams: list[str]) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        asyncio.ensure_future(self._answer(data, addr))

    async def _answer(self, data: bytes, addr) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not DNS: ignore, as a resolver does
            return
        reply = self._local(query)
        wire = reply.to_wire() if reply is not None else await self._forward(query, data)
        if wire and self.transport is not None:
            self.transport.sendto(wire, addr)

    def _local(self, query: dns.message.Message) -> dns.message.Message | None:
        if len(query.question) != 1:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        addresses = self.lookup(name)
        if not addresses:
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA | dns.flags.RA
        if question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
            reply.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", addresses))
        return reply  # a known name without that record type: NOERROR, no answer

    async def _forward(self, query: dns.message.Message, data: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (upstream, 53))
                    await loop.sock_sendall(sock, data)
                    return await asyncio.wait_for(loop.sock_recv(sock, 65535), FORWARD_TIMEOUT)
                except (OSError, TimeoutError):
                    continue
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply.to_wire()


class NetworkDNS:
    """One network's server; `lookup(name)` gives the addresses of a name on the network."""

    def __init__(self, address: str, lookup: Callable[[str], list[str]], port: int = 53) -> None:
        self.address = address
        self.port = port
        self.lookup = lookup
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.transport, _ = await loop.create_datagram_endpoint(
                lambda: _Server(self.lookup, host_resolvers()), local_addr=(self.address, self.port))
        except OSError as e:
            log.warning("network DNS on %s:%d unavailable: %s", self.address, self.port, e)

    def stop(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
            self.transport = None
