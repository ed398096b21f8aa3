"""Apache httpd with mod_auth_openidc (Debian's libapache2-mod-auth-openidc) in front of a small
CGI app, as a test process: its own ServerRoot and configuration in a temporary directory, one
virtual host per port, run in the foreground. Each site is a relying party of a real Passgate
with its own mod_auth_openidc settings (how it sends the authorization request, where it keeps
its session)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_for

APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
NEEDED = (
    "mpm_prefork",
    "authn_core",
    "authz_core",
    "authz_user",
    "alias",
    "cgi",
    "env",
    "rewrite",
)
# The app: shows what mod_auth_openidc handed it (environment variables, request headers).
APP_SCRIPT = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
env | grep -E '^(OIDC_|HTTP_|REMOTE_USER=)' | sort
"""
SIGNED_OUT_SCRIPT = """#!/bin/sh
printf 'Content-Type: text/html\\n\\n<h1>Signed out of the app</h1>\\n'
"""


@dataclass
class Site:
    """One virtual host: a relying party on its own port with extra mod_auth_openidc
    directives (`OIDCProviderAuthRequestMethod POST`, `OIDCSessionType client-cookie`, ...)."""

    name: str
    directives: dict[str, str] = field(default_factory=dict)
    lines: tuple[str, ...] = ()  # further configuration, as written (RewriteRule, ...)
    port: int = field(default_factory=free_port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base}/app/redirect_uri"

    @property
    def signed_out(self) -> str:
        return f"{self.base}/public/signed-out"


def require_apache() -> None:
    """Fail without Apache and the module, as require_binary does for other binaries;
    .ci/run installs them."""
    missing = [
        path for path in (Path(APACHE), MODULES / "mod_auth_openidc.so") if not path.exists()
    ]
    if missing:
        hint = "apt-get install -y apache2 libapache2-mod-auth-openidc"
        pytest.fail(f"{', '.join(map(str, missing))} missing: {hint}")


class ApacheProcess:
    """`apache2 -DFOREGROUND` with a configuration written for `sites`."""

    def __init__(
        self, root: Path, sites: list[Site], metadata_url: str, client_id: str, secret: str
    ) -> None:
        self.root = root
        self.sites = sites
        self.metadata_url = metadata_url
        self.client_id = client_id
        self.secret = secret
        self.process: subprocess.Popen[bytes] | None = None
        # Run as root, Apache serves as nobody, who cannot enter pytest's private tmp_path.
        self.scripts = Path(tempfile.mkdtemp(prefix="passgate-apache-"))
        self.scripts.chmod(0o755)

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def errors(self) -> list[str]:
        """The module's error lines (`auth_openidc:error`), which a clean run has none of."""
        text = self.error_log.read_text() if self.error_log.exists() else ""
        return [line for line in text.splitlines() if "auth_openidc:error" in line]

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for folder, name, script in (
            ("app", "whoami", APP_SCRIPT),
            ("public", "signed-out", SIGNED_OUT_SCRIPT),
        ):
            (self.scripts / folder).mkdir(mode=0o755, exist_ok=True)
            (self.scripts / folder / name).write_text(script)
            (self.scripts / folder / name).chmod(0o755)
        config = [
            f"ServerRoot {self.root}",
            "ServerName 127.0.0.1",
            f"PidFile {self.root}/httpd.pid",
            f"DefaultRuntimeDir {self.root}",
            f"ErrorLog {self.root}/error.log",
            "LogLevel warn auth_openidc:info",
            *(f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in NEEDED),
            f"LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so",
            "StartServers 2",
            "MinSpareServers 1",
            "MaxSpareServers 4",
            *(["User nobody", "Group nogroup"] if os.geteuid() == 0 else []),
        ]
        for site in self.sites:
            directives = {
                "OIDCProviderMetadataURL": self.metadata_url,
                "OIDCClientID": self.client_id,
                "OIDCClientSecret": self.secret,
                "OIDCRedirectURI": site.redirect_uri,
                "OIDCCryptoPassphrase": f"test-passphrase-{site.name}",
                # Both sites are on 127.0.0.1: cookies (which ignore ports) must not collide.
                "OIDCCookie": f"rp_{site.name}",
                "OIDCStateCookiePrefix": f"rp_{site.name}_state_",
                "OIDCScope": '"openid profile email groups"',
                "OIDCPKCEMethod": "S256",
                "OIDCRemoteUserClaim": "preferred_username",
                "OIDCPassClaimsAs": "both",
                "OIDCAuthNHeader": "X-Remote-User",
                "OIDCDefaultLoggedOutURL": site.signed_out,
                **site.directives,
            }
            config += [
                f"Listen 127.0.0.1:{site.port}",
                f"<VirtualHost 127.0.0.1:{site.port}>",
                *(f"    {name} {value}" for name, value in directives.items()),
                *(f"    {line}" for line in site.lines),
                f"    ScriptAlias /app/ {self.scripts}/app/",
                f"    ScriptAlias /public/ {self.scripts}/public/",
                "    <Location /app/>",
                "        AuthType openid-connect",
                "        Require valid-user",
                "    </Location>",
                "</VirtualHost>",
            ]
        path = self.root / "httpd.conf"
        path.write_text("\n".join(config) + "\n")
        return path

    def start(self) -> None:
        config = self.write_config()
        check = subprocess.run(
            [APACHE, "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [APACHE, "-DFOREGROUND", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "stderr.log").open("wb"),
            # On shutdown Apache signals its whole process group: keep pytest out of it.
            start_new_session=True,
        )
        wait_for(self._up, what=f"apache (log: {self.error_log})")

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = self.error_log.read_text() if self.error_log.exists() else ""
            raise RuntimeError(f"apache exited: {(self.root / 'stderr.log').read_text()}{log}")
        try:
            answers = [httpx.get(f"{s.signed_out}", timeout=1) for s in self.sites]
        except httpx.TransportError:
            return False
        return all(a.status_code == 200 for a in answers)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None
        shutil.rmtree(self.scripts, ignore_errors=True)


def claims_seen(text: str) -> dict[str, str]:
    """What the CGI app printed: the variables mod_auth_openidc set, one NAME=value a line."""
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {name: value for name, _, value in pairs}
