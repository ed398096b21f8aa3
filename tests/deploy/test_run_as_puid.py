"""docker/run-as-puid, the container's way from root to PUID:PGID, run for real: as root (this
machine's and CI's user, as in the container) against a data folder in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "docker" / "run-as-puid"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("run-as-puid is tested as root, the user a container starts as")
    # Outside pytest's own 0700 temporary tree, so the dropped user can reach it.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)  # noqa: S103 - the dropped user must traverse it
        yield Path(folder) / "data"


def run(data_dir: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ["PATH"], "DATA_DIR": str(data_dir), **env}
    return subprocess.run(
        ["sh", str(SCRIPT), *command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_command_runs_with_puid_and_pgid_and_no_other_groups(data_dir: Path) -> None:
    result = run(data_dir, "sh", "-c", "id -u; id -g; id -G", PUID="4321", PGID="4322")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4321", "4322", "4322"]


def test_command_keeps_no_capabilities_and_cannot_regain_privileges(data_dir: Path) -> None:
    result = run(data_dir, "cat", "/proc/self/status", PUID="4321", PGID="4322")
    status = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    assert status["CapEff"].strip() == status["CapPrm"].strip() == "0" * 16
    assert status["NoNewPrivs"].strip() == "1"


def test_data_folder_is_created_for_puid_and_writable_by_it(data_dir: Path) -> None:
    result = run(data_dir, "touch", str(data_dir / "passgate.db"), PUID="4321", PGID="4322")
    assert result.returncode == 0, result.stderr
    for path in (data_dir, data_dir / "passgate.db"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)


def test_data_folder_owned_by_someone_else_is_handed_over(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "old.db").write_text("")  # written by root, e.g. an older image
    result = run(data_dir, "true", PUID="4321", PGID="4322")
    assert result.returncode == 0, result.stderr
    assert (data_dir / "old.db").stat().st_uid == 4321


def test_ids_default_to_1000(data_dir: Path) -> None:
    result = run(data_dir, "sh", "-c", "id -u; id -g")
    assert result.stdout.split() == ["1000", "1000"]


@pytest.mark.parametrize("ids", [{"PUID": "0"}, {"PGID": "0"}])
def test_root_ids_are_refused(data_dir: Path, ids: dict[str, str]) -> None:
    result = run(data_dir, "id", **ids)
    assert result.returncode == 64
    assert "refusing to run as root" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("ids", [{"PUID": "alice"}, {"PGID": "12a"}, {"PUID": "-1"}])
def test_non_numeric_ids_are_refused(data_dir: Path, ids: dict[str, str]) -> None:
    result = run(data_dir, "id", **ids)
    assert result.returncode == 64
    assert "must be numeric" in result.stderr and result.stdout == ""


def test_started_as_another_user_it_runs_the_command_unchanged(data_dir: Path) -> None:
    """`docker run --user 2000:2000`: nothing to drop, the data folder is left alone."""
    result = subprocess.run(
        ["setpriv", "--reuid=2000", "--regid=2000", "--clear-groups", "sh", str(SCRIPT), "id"],
        env={"PATH": os.environ["PATH"], "DATA_DIR": str(data_dir), "PUID": "4321"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.startswith("uid=2000 gid=2000 "), result.stderr
    assert not data_dir.exists()
