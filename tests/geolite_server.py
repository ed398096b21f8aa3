"""A stand-in for MaxMind's download server: serves a GeoLite2-City tar.gz built in the test
around a real (tiny) .mmdb, and remembers the request paths it was asked for."""

from __future__ import annotations

import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.conftest import free_port

# MaxMind's archives hold the database in a dated folder.
MEMBER = "GeoLite2-City_20261201/GeoLite2-City.mmdb"


def city_mmdb(path: Path, city: str = "Wellington") -> Path:
    """A GeoLite2-City-shaped database placing 198.51.100.0/24 in New Zealand, in `city`."""
    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"]
    )
    record = {
        "country": {"iso_code": "NZ", "names": {"en": "New Zealand"}},
        "city": {"names": {"en": city}},
    }
    writer.insert_network(IPSet(["198.51.100.0/24"]), record)
    writer.to_db_file(str(path))
    return path


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A tar.gz holding `members` (name → content) as regular files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def geolite_archive(mmdb: Path) -> bytes:
    """The archive as MaxMind ships it: licence files and the database in a dated folder."""
    folder = MEMBER.split("/")[0]
    return tar_gz(
        {
            f"{folder}/COPYRIGHT.txt": b"Database and Contents Copyright (c) MaxMind, Inc.\n",
            f"{folder}/LICENSE.txt": b"GeoLite2 End User License Agreement\n",
            MEMBER: mmdb.read_bytes(),
        }
    )


class ArchiveServer:
    """Answers every GET with `body` and `status`; `paths` lists what was requested."""

    def __init__(self, body: bytes = b"", status: int = 200) -> None:
        self.body, self.status = body, status
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
