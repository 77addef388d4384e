"""The job input schema: worker-comfyui's shape, readable errors without echoed values, and the
published JSON Schema kept in sync with the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfy_serverless.errors import InvalidInputError
from comfy_serverless.jobs.schema import job_input_json_schema, parse_job_input

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "job_input.schema.json"


def test_worker_comfyui_input_shape_is_accepted() -> None:
    job = parse_job_input(
        {
            "workflow": {"1": {"class_type": "X", "inputs": {}}},
            "images": [{"name": "a.png", "image": "AAAA"}],
            "api_key_comfy_org": "k",
        }
    )
    assert job.images[0].name == "a.png"
    assert job.comfy_org_api_key is not None and job.comfy_org_api_key.get_secret_value() == "k"


def test_unknown_keys_are_ignored_for_compatibility() -> None:
    assert parse_job_input({"workflow": {"1": {}}, "s3": {"bucket": "x"}}).workflow == {"1": {}}


def test_errors_list_every_field_and_never_echo_values() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_job_input({"workflow": {"1": {}}, "timeout": "soon-secret", "images": [{"name": "a"}]})
    message = caught.value.message
    assert "timeout:" in message and "images[0].image: Field required" in message
    assert "soon-secret" not in message and "soon-secret" not in json.dumps(caught.value.details)


def test_published_json_schema_matches_the_code() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == job_input_json_schema(), (
        "regenerate with: python -m comfy_serverless.jobs.schema > schemas/job_input.schema.json"
    )


def test_json_schema_accepts_workflow_as_object_or_string() -> None:
    workflow = job_input_json_schema()["properties"]["workflow"]
    assert {"type": "object"} in workflow["anyOf"] and {"type": "string"} in workflow["anyOf"]
