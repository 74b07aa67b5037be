"""Every command explains itself: --help works everywhere and shows an example."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from innoverheid.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)
INTERFACE_COMMANDS = {"harvest", "import", "classify", "train", "evaluate", "predict", "review", "digest", "export",
                      "run", "schedule", "status", "demo", "forget"}


def test_every_command_in_the_interface_exists():
    assert INTERFACE_COMMANDS <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command, run_cli):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and "innoverheid" in result.stdout


def test_the_installed_console_command_runs():
    out = subprocess.run([sys.executable, "-m", "innoverheid.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "harvest" in out.stdout


def test_errors_have_no_traceback_unless_debug(workdir, run_cli):
    (workdir / "config.yaml").write_text("report: {language: fr}\n")
    plain = run_cli("status")
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", "status")
    assert debug.exit_code == 2 and "Traceback" in debug.stderr
