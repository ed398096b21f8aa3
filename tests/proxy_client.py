"""An HTTP client that talks to a local reverse proxy as if DNS pointed every name at it:
http or https (with SNI and certificate checks against the proxy's own CA), plus signing in
through the proxy with a one-time link, the way a person without a passkey at hand would."""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from tests.conftest import PassgateProcess

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


@dataclass
class ProxyClient:
    scheme: str
    port: int
    # The proxy's root certificate for https; None skips verification (always loopback here).
    ca_file: Path | None = None

    def url(self, host: str, path: str = "/") -> str:
        default = 443 if self.scheme == "https" else 80
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{path}"

    def raw(self, method: str, host: str, target: str) -> tuple[int, bytes]:
        """One request with `target` sent byte for byte (httpx would resolve dot segments);
        the status (0 when the proxy closed without answering) and the whole response."""
        netloc = urlsplit(self.url(host)).netloc
        lines = f"{method} {target} HTTP/1.1\r\nHost: {netloc}\r\nConnection: close\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=15) as plain:
            sock: socket.socket = plain
            if self.scheme == "https":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # loopback only
                sock = context.wrap_socket(plain, server_hostname=host)
            sock.sendall((lines + "Content-Length: 0\r\n\r\n").encode())
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        response = b"".join(chunks)
        parts = response.split(b" ", 2)
        return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), response

    def request(
        self,
        method: str,
        host: str,
        path: str = "/",
        *,
        cookie: str | None = None,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request to 127.0.0.1:port for `host`, redirects not followed."""
        sent = {**(headers or {}), "Host": urlsplit(self.url(host)).netloc}
        if cookie is not None:
            sent["Cookie"] = f"passgate_session={cookie}"
        verify: ssl.SSLContext | bool = False
        extensions = {}
        if self.scheme == "https":
            if self.ca_file is not None:
                verify = ssl.create_default_context(cafile=str(self.ca_file))
            extensions["sni_hostname"] = host
        with httpx.Client(verify=verify, timeout=15) as client:
            return client.request(
                method,
                f"{self.scheme}://127.0.0.1:{self.port}{path}",
                headers=sent,
                data=data,
                extensions=extensions,
            )

    def get(self, host: str, path: str = "/", **kwargs: object) -> httpx.Response:
        return self.request("GET", host, path, **kwargs)  # type: ignore[arg-type]

    def sign_in(self, passgate: PassgateProcess, username: str, auth_host: str) -> str:
        """Sign in through the proxy with a one-time link; return the session cookie."""
        link = passgate.cli("one-time-access-token", username)
        assert link.returncode == 0, link.stderr
        path = urlsplit(link.stdout.strip()).path
        target = self.url(auth_host, "/account")
        page = self.get(auth_host, path + "?rd=" + quote(target, safe=""), headers=BROWSER)
        assert page.status_code == 200, page.text
        # On https the CSRF cookie carries the __Host- prefix.
        match = re.search(
            r"((?:__Host-)?passgate_csrf)=([^;]+)", page.headers.get("set-cookie", "")
        )
        assert match is not None, page.headers
        csrf_name, csrf = match.groups()
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
        done = self.request(
            "POST",
            auth_host,
            "/login/code",
            headers={"Cookie": f"{csrf_name}={csrf}", "Origin": self.url(auth_host)[:-1]},
            data={**fields, "csrf_token": csrf},
        )
        assert done.status_code == 303, done.text
        session = re.search(r"passgate_session=([^;]+)", done.headers["set-cookie"])
        assert session is not None
        return session.group(1)
