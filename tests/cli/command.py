"""Running `passgate` as an operator does: a real process with its own data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS", "APP_"))}
    full_env.update({"DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
