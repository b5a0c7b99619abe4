"""The embedded DNS server of a user-defined network (Docker's 127.0.0.11): containers
on the network resolve each other's names and aliases to their addresses on it (A records
for IPv4, AAAA for IPv6 on a network with IPv6); every other name is forwarded to the
host's resolvers.

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


class _Resolver:
    """Answers one DNS message: the network's names from `lookup`, everything else from the
    upstreams over the transport the question came by (a reply too large for UDP is asked
    again over TCP by the client, as it is of any resolver)."""

    def __init__(self, lookup: Callable[[str], list[str]], upstreams: list[str]) -> None:
        self.lookup = lookup
        self.upstreams = upstreams

    async def answer(self, data: bytes, tcp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not DNS: ignore, as a resolver does
            return None
        reply = self._local(query)
        if reply is not None:
            return reply.to_wire()
        return await (self._forward_tcp(query, data) if tcp else self._forward_udp(query, data))

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
        if question.rdclass == dns.rdataclass.IN and question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            ipv6 = question.rdtype == dns.rdatatype.AAAA
            matching = [a for a in addresses if (":" in a) == ipv6]
            if matching:
                reply.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "AAAA" if ipv6 else "A",
                                                             matching))
        return reply  # a known name without that record type: NOERROR, no answer

    async def _forward_udp(self, query: dns.message.Message, data: bytes) -> bytes:
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
        return _servfail(query)

    async def _forward_tcp(self, query: dns.message.Message, data: bytes) -> bytes:
        for upstream in self.upstreams:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(upstream, 53), FORWARD_TIMEOUT)
                writer.write(len(data).to_bytes(2, "big") + data)
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), FORWARD_TIMEOUT), "big")
                return await asyncio.wait_for(reader.readexactly(size), FORWARD_TIMEOUT)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                continue
            finally:
                if writer is not None:
                    writer.close()
        return _servfail(query)


def _servfail(query: dns.message.Message) -> bytes:
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.SERVFAIL)
    return reply.to_wire()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, resolver: _Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        asyncio.ensure_future(self._reply(data, addr))

    async def _reply(self, data: bytes, addr) -> None:
        wire = await self.resolver.answer(data, tcp=False)
        if wire and self.transport is not None:
            self.transport.sendto(wire, addr)


async def _serve_stream(resolver: _Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """DNS over TCP: 2-byte length-prefixed messages, several per connection."""
    try:
        while True:
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 30), "big")
            wire = await resolver.answer(await asyncio.wait_for(reader.readexactly(size), 30), tcp=True)
            if wire is None:
                break
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
    except (asyncio.IncompleteReadError, OSError, TimeoutError):
        pass
    finally:
        writer.close()


class NetworkDNS:
    """One network's server (UDP and TCP); `lookup(name)` gives the addresses of a name on
    the network, IPv4 and IPv6 ones together."""

    def __init__(self, address: str, lookup: Callable[[str], list[str]], port: int = 53) -> None:
        self.address = address
        self.port = port
        self.lookup = lookup
        self.transport: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        resolver = _Resolver(self.lookup, host_resolvers())
        try:
            self.transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(resolver), local_addr=(self.address, self.port))
            self.tcp = await asyncio.start_server(lambda r, w: _serve_stream(resolver, r, w), self.address,
                                                  self.port, reuse_address=True)
        except OSError as e:
            log.warning("network DNS on %s:%d unavailable: %s", self.address, self.port, e)

    def stop(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
            self.transport = None
        if self.tcp is not None:
            self.tcp.close()
            self.tcp = None
