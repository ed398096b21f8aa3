"""The README stays true: its settings table is the generated one, its commands exist."""

from __future__ import annotations

import re

from gateway.core.settings import settings_table
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_settings_table_matches_the_settings_model() -> None:
    block = README.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert block.strip() == settings_table().strip(), "run: passgate settings-table"


def test_ci_runs_the_readme_test_command() -> None:
    command = re.search(r"```sh\n(python3 -m venv .venv && .*pytest)\n```", README)
    assert command is not None
    assert command.group(1) in (ROOT / ".ci" / "run").read_text()


def test_quick_start_serves_passgate() -> None:
    assert "passgate serve" in README
