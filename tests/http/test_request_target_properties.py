"""Properties of gateway.http.request_target.canonical_target, checked by Hypothesis, and its
agreement with the servers that really serve the files: a real Caddy `file_server` and a real
nginx static `root`, over a small tree whose every file holds its own path.

Agreement means: for a target Passgate accepts, the file either server answers with is the file
at the canonical path, or the server serves nothing (404, 400, a redirect). A server answering
with another file would let a rule judged on the canonical path guard the wrong file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http.request_target import TargetRefused, canonical_target
from tests.conftest import CaddyProcess, free_port, port_open, require_binary, wait_for
from tests.forward_auth.raw_requests import Case, Proxy

DIRS = ("", "a", "b", "a/b", "b/a", "a/a")
NAMES = ("f", "g", "h i", "é")


def canonical(target: str) -> str | None:
    """The canonical path of a request target, or None when Passgate refuses it."""
    try:
        return canonical_target(target).path
    except TargetRefused:
        return None


# Pieces of a path segment, each in several spellings.
PIECES = st.sampled_from(
    [
        "a",
        "b",
        "f",
        "g",
        "x",
        "%61",
        "%62",
        "%66",
        "%2e",
        "%2E",
        ".",
        "h%20i",
        "%C3%A9",
        "%c3%a9",
        ";p",
        ";",
        "%3b",
        "%3f",
        "%23",
        "%25",
        "%2f",
        "\\",
        "%5c",
        "~",
        "-",
    ]
)
SEGMENTS = st.one_of(
    st.sampled_from(["", ".", "..", "%2e%2e", ".%2e", "%2E.", "..;p", ".;p"]),
    st.lists(PIECES, min_size=1, max_size=3).map("".join),
)
TARGETS = st.builds(
    lambda segments, query: "/" + "/".join(segments) + query,
    st.lists(SEGMENTS, min_size=1, max_size=7),
    st.sampled_from(["", "?", "?q=1", "?/../x", "?a=%2f"]),
)
# Each character of a file's name in the spellings a client may use for it.
SPELLINGS = {
    **{c: [c, f"%{ord(c):02x}", f"%{ord(c):02X}"] for c in "abfghi"},
    " ": ["%20"],
    "é": ["%C3%A9", "%c3%a9"],
}
# Detours that lead back to where they started.
DETOURS = st.sampled_from(
    ["", ".", "%2e", "%2E", "x/..", "a/%2e%2e", "b/.%2E", "x;p/..", "a/b/../..", "..", "%2e%2e"]
)


@st.composite
def file_targets(draw: st.DrawFn) -> str:
    """A spelling of the path of a file in the tree, with detours, so that most targets name a
    file that exists and a server reading the target another way would show."""
    folder = draw(st.sampled_from(DIRS))
    name = draw(st.sampled_from(NAMES))
    parts = []
    for segment in [*folder.split("/"), name] if folder else [name]:
        parts += draw(st.lists(DETOURS, max_size=2))
        parts.append("".join(draw(st.sampled_from(SPELLINGS[c])) for c in segment))
    query = draw(st.sampled_from(["", "?", "?q=1", "?/../x", "?a=%2f"]))
    return "/" + "/".join(parts) + query


# Anything printable, for the properties that need no server.
ANY_TARGETS = st.builds(
    lambda tail: "/" + tail,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(file_targets(), TARGETS, ANY_TARGETS))
def test_canonical_path_is_rooted_with_no_dot_segments_and_no_empty_segments(
    target: str,
) -> None:
    path = canonical(target)
    if path is None:
        return
    assert path.startswith("/")
    assert "//" not in path
    assert not any(segment in (".", "..") for segment in path.split("/"))


@settings(max_examples=500, deadline=None)
@given(st.one_of(file_targets(), TARGETS, ANY_TARGETS))
def test_canonicalising_the_reencoded_canonical_path_changes_nothing(target: str) -> None:
    path = canonical(target)
    if path is None:
        return
    assert canonical(quote(path, safe="/")) == path


# --- Agreement with real servers ----------------------------------------------------------------


def write_tree(root: Path) -> None:
    for folder in DIRS:
        for name in NAMES:
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("/" + (folder + "/" if folder else "") + name, encoding="utf-8")


class StaticServers:
    def __init__(self, root: Path) -> None:
        write_tree(root / "tree")
        self.caddy = Proxy("caddy", "http", free_port())
        self.nginx = Proxy("nginx", "http", free_port())
        caddyfile = root / "Caddyfile"
        caddyfile.write_text(
            "{\n\tadmin off\n\tauto_https off\n}\n\n"
            f"http://:{self.caddy.port} {{\n\troot * {root / 'tree'}\n\tfile_server\n}}\n"
        )
        self._caddy = CaddyProcess(caddyfile, self.caddy.port, root / "caddy.log")
        self._caddy.start()
        binary = require_binary("nginx", "apt-get install -y nginx-light")
        temp = "".join(
            f"    {name}_temp_path {root / name};\n"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config = root / "nginx.conf"
        config.write_text(
            f"daemon off;\nmaster_process off;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'};\nevents {{}}\nhttp {{\n    access_log off;\n{temp}"
            f"    server {{\n        listen 127.0.0.1:{self.nginx.port};\n"
            f"        root {root / 'tree'};\n    }}\n}}\n"
        )
        self._nginx = subprocess.Popen([binary, "-c", str(config)])
        wait_for(lambda: port_open(self.nginx.port), what="nginx")

    def stop(self) -> None:
        self._caddy.stop()
        self._nginx.terminate()
        self._nginx.wait(15)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServers]:
    running = StaticServers(tmp_path_factory.mktemp("static"))
    yield running
    running.stop()


def served(proxy: Proxy, target: str) -> str | None:
    """The body of the file the server answers with, or None when it serves none."""
    status, response = proxy.send(Case("agreement", target, headers=(("Host", "localhost"),)))
    assert status != 0 and status < 500, (proxy.name, target, status)
    if status != 200:
        return None
    return response.split(b"\r\n\r\n", 1)[1].decode("utf-8")


def test_the_servers_serve_the_tree(servers: StaticServers) -> None:
    """The agreement property below can fail: each server serves the files, decoded."""
    for proxy in (servers.caddy, servers.nginx):
        assert served(proxy, "/a/b/f") == "/a/b/f"
        assert served(proxy, "/b/a/h%20i") == "/b/a/h i"
        assert served(proxy, "/a/%C3%A9") == "/a/é"
        assert served(proxy, "/a/b/../f") == "/a/f"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(st.one_of(file_targets(), TARGETS))
def test_servers_serve_the_file_at_the_canonical_path_or_nothing(
    servers: StaticServers, target: str
) -> None:
    path = canonical(target)
    if path is None:
        return
    for proxy in (servers.caddy, servers.nginx):
        body = served(proxy, target)
        assert body is None or body == path, (proxy.name, target, path, body)
