"""npm's openid-client as a relying party (tests/rp_node/rp.mjs): where it lives and how to run
one of its steps; the `openid_client` fixture (tests/oidc/conftest.py) installs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

RP_DIR = Path(__file__).resolve().parent.parent / "rp_node"
NPM_PACKAGES = ("openid-client", "jose")  # what rp.mjs imports, locked in package-lock.json


def installed() -> bool:
    return all((RP_DIR / "node_modules" / name).is_dir() for name in NPM_PACKAGES)


def rp_command(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    """How to run one step of rp.mjs (`settings` as upper-cased environment variables): its
    command line, directory and environment, for subprocess.run or Popen."""
    return {
        "args": ["node", "rp.mjs", step],
        "cwd": rp_dir,
        "env": {**os.environ, **{k.upper(): v for k, v in settings.items()}},
        "text": True,
    }


def run_rp(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    """Run one step of rp.mjs to the end; return the JSON it printed."""
    result = subprocess.run(
        **rp_command(rp_dir, step, **settings), capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
