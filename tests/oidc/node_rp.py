"""npm's openid-client (tests/rp_node/rp.mjs) as a relying party: install its locked
dependencies once and run one step of its flow (the same helper as
tests/oidc/test_oidc_openid_client.py, which keeps its own copy; a test module imports none)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import require_binary

RP_DIR = Path(__file__).resolve().parent.parent / "rp_node"


def openid_client_dir() -> Path:
    """tests/rp_node with its locked npm dependencies installed (node_modules is not committed)."""
    npm = require_binary("npm", "apt-get install -y nodejs npm")
    require_binary("node", "apt-get install -y nodejs")
    if not (RP_DIR / "node_modules" / "openid-client").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=RP_DIR, check=True, timeout=300)
    return RP_DIR


def run_rp(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    result = subprocess.run(
        ["node", "rp.mjs", step],
        cwd=rp_dir,
        env={**os.environ, **{k.upper(): v for k, v in settings.items()}},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
