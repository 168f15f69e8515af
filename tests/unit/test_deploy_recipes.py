"""The container recipe and the systemd units (deploy/, Dockerfile) run real vidgate
commands with real options and settings, stop gracefully, and parse; docs/deploy.md
gives the commands that start each. Docker itself is not run here."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from vidgate.cli import app
from vidgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
_AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"}


def _check_command(argv: list[str]) -> None:
    """``argv`` parses as a vidgate command line (an unknown command or option raises)."""
    assert argv[0] == "vidgate", argv
    group: Any = get_command(app)  # a click group (typer's own build of click)
    command = group.commands[argv[1]]
    command.make_context(argv[1], argv[2:])


def _check_env(names: set[str]) -> None:
    fields = set(Settings.model_fields)
    for name in names:
        if name.startswith("VIDGATE_"):
            assert name.removeprefix("VIDGATE_").lower() in fields, name
        else:
            assert name in _AWS, name


def test_the_dockerfile_serves_as_a_user_with_a_liveness_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    _check_command(yaml.safe_load(cmd.group(1)))
    assert "HEALTHCHECK" in text and "/healthz" in text
    _check_env(set(re.findall(r"\b(VIDGATE_[A-Z_]+)=", text)))


def test_the_compose_file_runs_api_replicas_and_workers_on_postgres_and_minio() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "bucket", "api", "worker"} <= set(services)
    assert "mc mb" in " ".join(services["bucket"]["entrypoint"])
    for name, replicas in (("api", 2), ("worker", 3)):
        service = services[name]
        _check_command(service["command"])
        assert service["deploy"]["replicas"] == replicas
        env = service["environment"]
        assert env["VIDGATE_STORAGE_URL"].startswith("s3://")
        assert env["VIDGATE_DATABASE_URL"].startswith("postgresql://")
        _check_env(set(env))
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--no-worker" in services["api"]["command"]
    assert "--metrics-port" in services["worker"]["command"]
    # Each replica may hold about 50 connections (docs/deploy.md): PostgreSQL's
    # default of 100 refused the fourth process in the cluster test.
    pg_command = " ".join(services["postgres"]["command"])
    assert int(pg_command.split("max_connections=")[1].split()[0]) >= 50 * (2 + 3)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_each_unit_runs_vidgate_and_stops_it_gracefully(unit: Path) -> None:
    fields = dict(
        line.split("=", 1)
        for line in unit.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    argv = shlex.split(fields["ExecStart"].replace("%i", "9100"))
    assert argv[0] == "/opt/vidgate/venv/bin/vidgate"
    _check_command(["vidgate", *argv[1:]])
    assert fields["KillSignal"] == "SIGTERM"
    assert fields["Restart"] in ("always", "on-failure")
    # Above the graceful shutdown's 30 s (and the API's 10 s drain).
    assert int(fields["TimeoutStopSec"]) > 30
    assert fields["EnvironmentFile"] == "/etc/vidgate/vidgate.env"
    example = (ROOT / "deploy" / "systemd" / "vidgate.env.example").read_text()
    _check_env({line.split("=", 1)[0] for line in example.splitlines() if "=" in line})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    vidgate = Path(sys.executable).with_name("vidgate")
    env = ROOT / "deploy" / "systemd" / "vidgate.env.example"
    instances = []
    for unit, instance in zip(UNITS, ("8000", "9101"), strict=True):
        text = unit.read_text().replace("/opt/vidgate/venv/bin/vidgate", str(vidgate))
        text = text.replace("/etc/vidgate/vidgate.env", str(env))
        path = tmp_path / unit.name.replace("@.", f"@{instance}.")
        path.write_text(text)
        instances.append(str(path))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *instances],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_deploy_guide_gives_the_commands_that_start_each_recipe() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for command in (
        "docker build -t vidgate .",
        "docker compose -f deploy/compose.yaml up",
        "systemctl enable --now vidgate-api@8000",
        "systemctl enable --now vidgate-worker@9101",
    ):
        assert command in guide, command
