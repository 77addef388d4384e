"""The README documents what the code does: its configuration table is the settings object's, and its
test command is the one CI runs."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.settings import settings_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_is_the_settings_object() -> None:
    assert settings_table() in (REPO / "README.md").read_text()


def test_readme_opens_with_setup_and_test_commands_and_ci_runs_the_test_command() -> None:
    opening = (REPO / "README.md").read_text().split("```")[1]
    assert "bash scripts/setup.sh && bash scripts/serve.sh" in opening
    assert "bash scripts/test.sh" in opening
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
