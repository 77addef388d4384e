"""POST /prompt validation: every recorded 400/500 answer of 12_validation_errors, byte for byte in JSON,
plus the 200-with-node_errors case of 13_partially_invalid and the rules the transcripts imply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .support import Client, recorded_http, transcript, workflow

CASES = [e for e in recorded_http("12_validation_errors") if e["request"]["path"] == "/prompt"]


@pytest.mark.parametrize("case", CASES, ids=[str(e["label"]) for e in CASES])
async def test_recorded_validation_answer(client: Client, case: dict[str, Any]) -> None:
    request = case["request"]
    expected = case["response"]
    if "raw_body" in request:
        data: bytes = request["raw_body"].encode()
    else:
        data = json.dumps(request["json"]).encode()
    async with client.session.post(
        client.base + "/prompt", data=data, headers={"Content-Type": "application/json"}
    ) as resp:
        body = await resp.read()
        assert resp.status == expected["status"]
        assert resp.headers["Content-Type"] == expected["headers"]["Content-Type"]
    if "json" in expected:
        answer = json.loads(body)
        assert answer == expected["json"]
        # same key order as the real server, including node_errors order
        assert json.dumps(answer) == json.dumps(expected["json"])
        if "traceback" not in body.decode():
            # (tracebacks were shortened in the recording when paths were rewritten to /opt/ComfyUI)
            assert len(body) == expected["body_bytes"]
    else:
        assert body.decode() == expected["text"]


async def test_invalid_prompts_are_not_queued(client: Client) -> None:
    """12: nothing is queued, no execution message is sent (the socket only saw its first status)."""
    rec, cid = await client.ws()
    for name in ("broken_unknown_class", "broken_value_out_of_range", "broken_no_outputs"):
        async with client.session.post(
            client.base + "/prompt", json={"prompt": workflow(name), "client_id": cid}
        ) as resp:
            assert resp.status == 400
    assert await client.get_json("/queue") == {"queue_running": [], "queue_pending": []}
    assert rec.types() == transcript("12_validation_errors")["ws_message_type_sequence"]


async def test_partially_invalid_prompt_runs_the_valid_branch(client: Client) -> None:
    """13: HTTP 200 with node_errors for the bad branch; only the good output is executed."""
    rec, cid = await client.ws()
    recorded = recorded_http("13_partially_invalid", label="POST /prompt")[0]
    posted = await client.post_prompt(workflow("partially_invalid"), cid)
    assert posted["node_errors"] == recorded["response"]["json"]["node_errors"]
    await rec.wait_done(posted["prompt_id"])
    history = await client.history(posted["prompt_id"])
    assert history["prompt"][4] == ["2"]
    assert list(history["outputs"]) == ["2"]


async def test_number_front_and_client_prompt_id(client: Client) -> None:
    """19/24: number increments per POST (also for invalid ones), front=true makes it negative,
    an explicit number is echoed as a float, a client-chosen prompt_id is honoured."""
    first = await client.post_prompt(workflow("tiny_image"))
    async with client.session.post(client.base + "/prompt", json={"prompt": {}}) as resp:
        assert resp.status == 400
    front = await client.post_prompt(workflow("tiny_image"), front=True)
    assert front["number"] == -(first["number"] + 2)
    chosen = await client.post_prompt(workflow("tiny_image"), prompt_id="my-own-id")
    assert chosen["prompt_id"] == "my-own-id"
    assert chosen["number"] == first["number"] + 3
    explicit = await client.post_prompt(workflow("tiny_image"), number=5)
    assert explicit["number"] == 5.0 and isinstance(explicit["number"], float)


async def test_values_are_converted_in_place(client: Client) -> None:
    """ComfyUI converts INT/FLOAT/STRING inputs while validating; /history shows the converted prompt."""
    prompt = workflow("tiny_image")
    prompt["1"]["inputs"]["width"] = "32"
    prompt["1"]["inputs"]["color"] = 7.0
    prompt["2"]["inputs"]["filename_prefix"] = 123
    _, history = await client.run(prompt)
    inputs = history["prompt"][2]
    assert inputs["1"]["inputs"]["width"] == 32
    assert inputs["1"]["inputs"]["color"] == 7
    assert inputs["2"]["inputs"]["filename_prefix"] == "123"
    assert history["outputs"]["2"]["images"][0]["filename"].startswith("123_")


async def test_model_choice_lists_come_from_the_model_folders(client: Client) -> None:
    """The worker reads input_config of value_not_in_list to name the installed models."""
    prompt = workflow("ksampler_random_sd15")
    prompt["1"]["inputs"]["ckpt_name"] = "missing.safetensors"
    async with client.session.post(client.base + "/prompt", json={"prompt": prompt}) as resp:
        assert resp.status == 400
        body = await resp.json()
    (error,) = body["node_errors"]["1"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["input_config"][0] == ["random_sd15_arch.safetensors"]
    assert error["details"] == "ckpt_name: 'missing.safetensors' not in ['random_sd15_arch.safetensors']"


async def test_long_choice_lists_are_not_echoed(client: Client) -> None:
    """More than 20 choices: input_config is null and details say '(list of length N)'."""
    prompt = workflow("ksampler_random_sd15")
    prompt["5"]["inputs"]["sampler_name"] = "nope"
    async with client.session.post(client.base + "/prompt", json={"prompt": prompt}) as resp:
        body = await resp.json()
    (error,) = body["node_errors"]["5"]["errors"]
    assert error["extra_info"]["input_config"] is None
    assert error["details"].startswith("sampler_name: 'nope' not in (list of length ")


async def test_bad_link_on_an_output_node(client: Client) -> None:
    """A link to a missing node directly on the output node: exception_during_validation."""
    prompt = {"1": {"class_type": "SaveImage", "inputs": {"images": ["99", 0], "filename_prefix": "x"}}}
    async with client.session.post(client.base + "/prompt", json={"prompt": prompt}) as resp:
        assert resp.status == 400
        body = await resp.json()
    (error,) = body["node_errors"]["1"]["errors"]
    assert error["type"] == "exception_during_validation"
    assert error["details"] == "'99'"
    assert error["extra_info"]["exception_type"] == "KeyError"
    assert body["error"]["details"] == "Exception when validating node: '99'"
