"""nginx/passgate.conf made runnable here: local names, ports, paths and a self-signed certificate,
inside a whole nginx.conf (used by the recipe tests and the adversarial corpus)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT

DOMAIN = "passgate.test"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{DOMAIN}")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_config(
    folder: Path, https_port: int, http_port: int, passgate: int, upstream: int
) -> Path:
    """A whole nginx.conf around nginx/passgate.conf with local names, ports and paths."""
    cert, key = self_signed(folder)
    site = (ROOT / "nginx" / "passgate.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/example.com/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/example.com/privkey.pem", str(key))
    site = site.replace("example.com", DOMAIN)
    site = site.replace("listen 443 ", f"listen 127.0.0.1:{https_port} ")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("passgate:1411", f"127.0.0.1:{passgate}")
    site = site.replace("app:8080", f"127.0.0.1:{upstream}")
    site = site.replace("https://$host$request_uri", f"https://$host:{https_port}$request_uri")
    assert "example.com" not in site and not re.search(r"listen (443|80)\b", site)
    (folder / "passgate.conf").write_text(site)
    temp = {name: folder / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    config = folder / "nginx.conf"
    config.write_text(
        "daemon off;\nmaster_process off;\n"
        f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
        "events {}\nhttp {\n"
        f"    access_log off;\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    include {folder / 'passgate.conf'};\n}}\n"
    )
    return config
