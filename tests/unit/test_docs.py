"""The README documents what the code does: its configuration and templates tables are the code's, and
its test command is the one CI runs."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.settings import settings_table
from comfy_serverless.workflows.templates import TemplateCatalog, templates_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_is_the_settings_object() -> None:
    assert settings_table() in (REPO / "README.md").read_text()


def test_readme_opens_with_setup_and_test_commands_and_ci_runs_the_test_command() -> None:
    opening = (REPO / "README.md").read_text().split("```")[1]
    assert "bash scripts/setup.sh && bash scripts/serve.sh" in opening
    assert "bash scripts/test.sh" in opening
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_readme_templates_table_lists_every_shipped_template_and_its_parameters() -> None:
    catalog = TemplateCatalog.load([REPO / "workflows"])
    assert len(catalog.templates) == 9
    assert templates_table(catalog) in (REPO / "README.md").read_text()
