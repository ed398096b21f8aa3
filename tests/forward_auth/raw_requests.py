"""Raw HTTP/1.1 requests to a proxy, byte for byte (no client library normalises the target):
one `Case` per request, sent by `Proxy.send`."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Literal

DOMAIN = "passgate.test"
APP = f"app.{DOMAIN}"

Who = Literal["anonymous", "alice"]
FORBIDDEN: dict[str, tuple[bytes, ...]] = {
    "anonymous": (b"PRIVATE-MARKER", b"ADMIN-MARKER", b"SECRET-MARKER", b"CONFIG-MARKER"),
    "alice": (b"ADMIN-MARKER", b"CONFIG-MARKER"),
}


@dataclass(frozen=True)
class Case:
    """One request. `target` and `headers` may hold {scheme}, {port} for the proxy at hand.

    refuse: True when Passgate (or the proxy before it) must refuse it with 400/403; "nginx"
    when only nginx passes it on as sent (Caddy re-encodes a literal `#` and raw non-ASCII
    into `%23`, `%EF%BD%81` in X-Forwarded-Uri, which Passgate may read as data); None when
    either a refusal or a harmless answer is fine. serve: the marker an honest request must get.
    """

    family: str
    target: str
    who: Who = "anonymous"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = (("Host", APP + ":{port}"),)
    refuse: bool | Literal["nginx"] | None = None
    serve: str | None = None


# Made once: loading the system's CA store costs tens of milliseconds, per request.
TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE  # loopback only, our own self-signed certificate


@dataclass
class Proxy:
    name: str
    scheme: str
    port: int
    cookie: str = field(default="", repr=False)

    def send(self, case: Case) -> tuple[int, bytes]:
        """One raw request; the status (0 when the proxy closed without answering) and bytes."""
        lines = [f"{case.method} {self._fill(case.target)} HTTP/1.1"]
        lines += [f"{name}: {self._fill(value)}" for name, value in case.headers]
        if case.who == "alice":
            lines.append(f"Cookie: passgate_session={self.cookie}")
        if case.method.upper() == "POST":
            lines.append("Content-Length: 0")
        lines += ["Accept: */*", "Connection: close", "", ""]
        raw = "\r\n".join(lines).encode("utf-8")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as plain:
            sock: socket.socket = plain
            if self.scheme == "https":
                sock = TLS.wrap_socket(plain, server_hostname=APP)
            sock.sendall(raw)
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        response = b"".join(chunks)
        parts = response.split(b" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return status, response

    def _fill(self, text: str) -> str:
        return text.replace("{scheme}", self.scheme).replace("{port}", str(self.port))
