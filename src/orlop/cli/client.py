"""An HTTP/1.1 client of the Engine API over a unix socket, on `_socket` directly.

(`http.client` pulls in the email package and `socket` the enum module: together about
30 ms, more than the rest of a command. The API needs little of HTTP: requests with a
JSON, file or chunked body; answers with a Content-Length, chunked or until-close body;
and the hijack of attach / exec start, where a `101 UPGRADED` answer turns the
connection into a raw byte pipe.)

Every request gets its own connection, so a long stream (wait, logs -f, events) never
holds up another request.
"""

from __future__ import annotations

import _socket
import os

from orlop import fastjson
from orlop.cli import gojson

API_PREFIX = "/v1.45"
DEFAULT_HOST = "unix:///run/orlop/orlop.sock"
USER_AGENT = "orlop-cli/0.1.0 (linux)"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = _UNRESERVED | frozenset(b"/:@!$&'()*+,;=")


class APIError(Exception):
    """The daemon answered with an error status; `message` is its {"message": …}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    """The daemon's socket does not answer."""


def quote(text: str, safe: frozenset[int] = _UNRESERVED) -> str:
    out = []
    for byte in text.encode():
        out.append(chr(byte) if byte in safe else f"%{byte:02X}")
    return "".join(out)


def query_string(query) -> str:
    """`query`: a dict or a list of pairs; None values are left out, True is "1"."""
    if not query:
        return ""
    pairs = query.items() if isinstance(query, dict) else query
    parts = []
    for key, value in pairs:
        if value is None or value is False:
            continue
        if value is True:
            value = "1"
        # Go's url.QueryEscape, as the docker CLI's queries are written: a space is "+"
        parts.append(f"{quote(key)}={quote(str(value)).replace('%20', '+')}")
    return "?" + "&".join(parts) if parts else ""


def socket_path(host: str) -> str:
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if "://" in host:
        raise ConnectError(f"unsupported host {host!r}: orlop talks to its daemon over a unix socket "
                           "(unix:///path/to/orlop.sock)")
    return host


class Response:
    """Status and headers have been read; the body is read on demand from the socket."""

    def __init__(self, sock, status: int, reason: str, headers: dict[str, str], buffer: bytes,
                 method: str) -> None:
        self.sock = sock
        self.status = status
        self.reason = reason
        self.headers = headers
        self._buffer = buffer
        self._eof = False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._mode, self._left = "length", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode, self._left = "chunked", 0
        elif "content-length" in headers:
            self._mode, self._left = "length", int(headers["content-length"])
        else:
            self._mode, self._left = "close", -1

    # -- raw socket reading ---------------------------------------------------------------------
    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            return False
        self._buffer += data
        return True

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if not self._fill():
                raise ConnectError("the daemon closed the connection in the middle of an answer")
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectError("the daemon closed the connection in the middle of an answer")
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    # -- the body -------------------------------------------------------------------------------
    def chunks(self):
        """The body as it arrives, in pieces of any size."""
        while not self._eof:
            if self._mode == "length":
                if self._left <= 0:
                    break
                if not self._buffer and not self._fill():
                    break
                data, self._buffer = self._buffer[:self._left], self._buffer[self._left:]
                self._left -= len(data)
                yield data
            elif self._mode == "chunked":
                if self._left == 0:
                    size = int(self._line().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self._line():  # trailers up to the blank line
                            pass
                        break
                    self._left = size
                if not self._buffer and not self._fill():
                    break
                data, self._buffer = self._buffer[:self._left], self._buffer[self._left:]
                self._left -= len(data)
                if self._left == 0:
                    self._take(2)
                yield data
            else:
                if self._buffer:
                    data, self._buffer = self._buffer, b""
                    yield data
                elif not self._fill():
                    break
        self._eof = True

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self):
        """The body split on newlines (JSON-lines streams); empty lines are skipped."""
        pending = b""
        for data in self.chunks():
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def json_lines(self):
        for line in self.lines():
            yield fastjson.loads(line)

    def json(self):
        data = self.read()
        return fastjson.loads(data) if data.strip() else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Client:
    def __init__(self, host: str) -> None:
        self.host = host
        self.path = socket_path(host)

    def connect(self):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise ConnectError(f"Cannot connect to the orlop daemon at {self.host}. Is the orlop daemon "
                               f"running? ({os.strerror(e.errno) if e.errno else e})") from None
        return sock

    # -- requests -------------------------------------------------------------------------------
    def send(self, method: str, path: str, query=None, body=None, headers: dict[str, str] | None = None,
             versioned: bool = True):
        """Send a request on a new connection; returns the socket (the answer is not read)."""
        target = (API_PREFIX if versioned else "") + quote(path, _PATH_SAFE) + query_string(query)
        head = {"Host": "api.moby.localhost", "User-Agent": USER_AGENT}
        payload = None
        if isinstance(body, dict | list):
            payload = gojson.dumps(body).encode() + b"\n"  # as Go's json.Encoder writes it
            head["Content-Type"] = "application/json"
        elif isinstance(body, bytes | str):
            payload = body.encode() if isinstance(body, str) else body
        head.update(headers or {})
        sized = "Content-Length" in head  # a streamed body whose length the caller knows
        if payload is not None:
            head["Content-Length"] = str(len(payload))
        elif body is None and method in ("POST", "PUT"):
            head["Content-Length"] = "0"
        elif body is not None and not sized:  # a file object or an iterator of bytes: chunked
            head["Transfer-Encoding"] = "chunked"
        sock = self.connect()
        try:
            lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (payload or b""))
            if payload is None and body is not None:
                pieces = iter(lambda: body.read(1 << 20), b"") if hasattr(body, "read") else body
                for piece in pieces:
                    if piece:
                        sock.sendall(piece if sized else b"%x\r\n%s\r\n" % (len(piece), piece))
                if not sized:
                    sock.sendall(b"0\r\n\r\n")
        except OSError as e:
            sock.close()
            raise ConnectError(f"lost the connection to the orlop daemon at {self.host}: {e}") from None
        return sock

    def receive(self, sock, method: str = "GET") -> Response:
        """Read the status line and headers of the answer on `sock`."""
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                sock.close()
                raise ConnectError(f"the orlop daemon at {self.host} closed the connection without answering")
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return Response(sock, int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest, method)

    def request(self, method: str, path: str, query=None, body=None, headers: dict[str, str] | None = None,
                versioned: bool = True) -> Response:
        """Send and read the answer's head; an error status raises APIError (body read)."""
        response = self.receive(self.send(method, path, query, body, headers, versioned), method)
        if response.status >= 400:
            raise error_of(response)
        return response

    def call(self, method: str, path: str, query=None, body=None, headers: dict[str, str] | None = None):
        """A request whose answer is JSON (or empty): the parsed value."""
        response = self.request(method, path, query, body, headers)
        try:
            return response.json()
        finally:
            response.close()

    def get(self, path: str, query=None):
        return self.call("GET", path, query)

    def post(self, path: str, query=None, body=None):
        return self.call("POST", path, query, body)

    def hijack(self, path: str, query=None, body=None) -> tuple[object, bytes]:
        """POST with `Upgrade: tcp`; on `101` the connection is a raw pipe both ways.
        Returns the socket and what already arrived after the answer's head."""
        content_type = "application/json" if body is not None else "text/plain"
        sock = self.send("POST", path, query, body,
                         {"Connection": "Upgrade", "Upgrade": "tcp", "Content-Type": content_type})
        response = self.receive(sock, "POST")
        if response.status >= 400:
            raise error_of(response)
        if response.status != 101:
            response.close()
            raise ConnectError(f"unable to upgrade to tcp, received {response.status}")
        return sock, response._buffer


def error_of(response: Response) -> APIError:
    try:
        body = response.read()
    except ConnectError:
        body = b""
    finally:
        response.close()
    message = body.decode(errors="replace").strip()
    if response.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            message = fastjson.loads(body).get("message", message)
        except (ValueError, AttributeError):
            pass
    if not message:
        message = f"request returned {response.status} {response.reason} for API route and version " \
                  f"{API_PREFIX}, check if the server supports the requested API version"
    return APIError(response.status, message)
