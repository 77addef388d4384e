"""What a client sees from the "0.38" profile (ComfyUI 0.38.1) over HTTP and the WebSocket, next to what
the default 0.8.0 profile answers to the same request (README "Profiles" cites
the newer ComfyUI source for each)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from .support import Client, EmulatorProcess, png_bytes, recorded_http, unique_number, with_color, workflow

INVALID_PROMPT_ID = {
    "error": {
        "type": "invalid_prompt_id",
        "message": "prompt_id must be a valid UUID",
        "details": (
            "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the "
            "server generate one"
        ),
        "extra_info": {},
    },
    "node_errors": {},
}


async def post(client: Client, path: str, body: Any) -> tuple[int, Any]:
    async with client.session.post(client.base + path, json=body) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text and resp.content_type == "application/json" else text)


async def wait_history(client: Client, prompt_id: str, wait_s: float = 15.0) -> dict[str, Any]:
    """For prompts without a client_id (no WebSocket messages): poll /history/{id}."""
    for _ in range(int(wait_s / 0.05)):
        data = await client.get_json(f"/history/{prompt_id}")
        if prompt_id in data:
            return dict(data[prompt_id])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{prompt_id} never reached the history")


def chain(color: int, prefix: str = "chain") -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


# --------------------------------------------------------------------------- POST /prompt
@pytest.mark.parametrize("bad_id", ["my-own-id", str(uuid.uuid4()).upper(), uuid.uuid4().hex, 5])
async def test_prompt_id_must_be_a_canonical_uuid(client: Client, client038: Client, bad_id: Any) -> None:
    """0.8.0 accepts any prompt_id as a string (server.py L872); newer server.py L1030-1045 refuses
    anything but a canonical lowercase hyphenated UUID with 400 invalid_prompt_id."""
    prompt = with_color(workflow("tiny_image"))
    status, body = await post(client, "/prompt", {"prompt": prompt, "prompt_id": bad_id})
    assert status == 200 and body["prompt_id"] == str(bad_id)
    first = await client038.post_prompt(with_color(workflow("tiny_image")))
    status, body = await post(client038, "/prompt", {"prompt": prompt, "prompt_id": bad_id})
    assert (status, body) == (400, INVALID_PROMPT_ID)
    # the refused POST still used up a number, and nothing was queued under that id
    second = await client038.post_prompt(with_color(workflow("tiny_image")))
    assert second["number"] == first["number"] + 2
    assert await client038.get_json(f"/history/{bad_id}") == {}


async def test_prompt_id_accepted_forms(client: Client, client038: Client) -> None:
    own = str(uuid.uuid4())
    for c in (client, client038):
        assert (await c.post_prompt(with_color(workflow("tiny_image")), prompt_id=own))["prompt_id"] == own
        own = str(uuid.uuid4())
    # explicit null: newer mints an id; 0.8.0 stringifies it
    status, body = await post(
        client038, "/prompt", {"prompt": with_color(workflow("tiny_image")), "prompt_id": None}
    )
    assert status == 200 and is_uuid(body["prompt_id"])
    status, body = await post(
        client, "/prompt", {"prompt": with_color(workflow("tiny_image")), "prompt_id": None}
    )
    assert status == 200 and body["prompt_id"] == "None"


# --------------------------------------------------------------------------- validation
async def test_missing_node_type(client: Client, client038: Client) -> None:
    """newer execution.py L1150-1185 (missing_node_type) vs 0.8.0's recorded invalid_prompt (12)."""
    unknown = workflow("broken_unknown_class")
    recorded = recorded_http("12_validation_errors", label="POST /prompt broken_unknown_class")
    status, body = await post(client, "/prompt", {"prompt": unknown})
    assert (status, body) == (400, recorded[0]["response"]["json"])
    status, body = await post(client038, "/prompt", {"prompt": unknown})
    assert status == 400
    assert body == {
        "error": {
            "type": "missing_node_type",
            "message": "Node 'DoesNotExistNode' not found. The custom node may not be installed.",
            "details": "Node ID '#2'",
            "extra_info": {
                "node_id": "2",
                "class_type": "DoesNotExistNode",
                "node_title": "DoesNotExistNode",
            },
        },
        "node_errors": {},
    }
    titled = copy.deepcopy(unknown)
    titled["2"]["_meta"] = {"title": "My Upscaler"}
    _, body = await post(client038, "/prompt", {"prompt": titled})
    assert body["error"]["message"] == "Node 'My Upscaler' not found. The custom node may not be installed."
    assert body["error"]["extra_info"]["node_title"] == "My Upscaler"

    no_class = workflow("broken_missing_class_type")
    _, body = await post(client, "/prompt", {"prompt": no_class})
    assert body["error"]["type"] == "invalid_prompt"
    _, body = await post(client038, "/prompt", {"prompt": no_class})
    assert body["error"] == {
        "type": "missing_node_type",
        "message": "Node 'ID #1' has no class_type. The workflow may be corrupted or a custom node is missing.",
        "details": "Node ID '#1'",
        "extra_info": {"node_id": "1", "class_type": None, "node_title": None},
    }


def cyclic() -> dict[str, Any]:
    return {
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "cycle"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},
        "4": {"class_type": "ImageBlur", "inputs": {"image": ["3", 0], "blur_radius": 1, "sigma": 1.0}},
    }


async def test_dependency_cycle(client: Client, client038: Client) -> None:
    """newer execution.py L848-876: each node of the cycle gets dependency_cycle.  0.8.0 has no cycle
    check: it recurses until RecursionError, whose inner-validation error every frame further up then
    overwrites with its own error-less result, so the 400 names no node at all."""
    status, body = await post(client038, "/prompt", {"prompt": cyclic()})
    assert status == 400
    path = "3 (ImageInvert) -> 4 (ImageBlur) -> 3 (ImageInvert)"
    assert body == {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            node: {
                "errors": [
                    {
                        "type": "dependency_cycle",
                        "message": "Dependency cycle detected",
                        "details": path,
                        "extra_info": {"node_id": node, "cycle_nodes": ["3", "4"]},
                    }
                ],
                "dependent_outputs": ["9"],
                "class_type": class_type,
            }
            for node, class_type in (("3", "ImageInvert"), ("4", "ImageBlur"))
        },
    }
    status, body = await post(client, "/prompt", {"prompt": cyclic()})
    assert (status, body["node_errors"]) == (400, {})
    assert body["error"]["type"] == "prompt_outputs_failed_validation"


async def test_value_not_in_list_and_bad_link_wording(client: Client, client038: Client) -> None:
    """newer L1086: repr() of the bad value; L932: new wording of bad_linked_input."""
    prompt = workflow("broken_value_not_in_list")
    prompt["2"]["inputs"]["upscale_method"] = 5
    choices = "['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']"
    _, old = await post(client, "/prompt", {"prompt": prompt})
    _, new = await post(client038, "/prompt", {"prompt": prompt})
    assert old["node_errors"]["2"]["errors"][0]["details"] == f"upscale_method: '5' not in {choices}"
    assert new["node_errors"]["2"]["errors"][0]["details"] == f"upscale_method: 5 not in {choices}"
    prompt["2"]["inputs"]["upscale_method"] = "it's"
    _, new = await post(client038, "/prompt", {"prompt": prompt})
    assert new["node_errors"]["2"]["errors"][0]["details"] == f'upscale_method: "it\'s" not in {choices}'

    bad_link = with_color(workflow("tiny_image"))
    bad_link["2"]["inputs"]["images"] = ["1", 0, 0]
    _, old = await post(client, "/prompt", {"prompt": bad_link})
    _, new = await post(client038, "/prompt", {"prompt": bad_link})
    assert old["node_errors"]["2"]["errors"][0]["message"] == (
        "Bad linked input, must be a length-2 list of [string, int]"
    )
    assert new["node_errors"]["2"]["errors"][0]["message"] == (
        "Bad linked input, must be a length-2 list of [node_id, slot_index]"
    )


# --------------------------------------------------------------------------- outputs
async def test_outputs_carry_metadata_and_asset_ids(client: Client, client038: Client) -> None:
    """newer execution.py L568-579: metadata always, id/preview_id with the assets system on, in both
    ``executed`` and /history; a cached replay names the same file and the same id."""
    prompt = with_color(workflow("tiny_image"))
    rec, history = await client038.run(prompt)
    (executed,) = rec.of_type("executed")
    (image,) = executed.data["output"]["images"]
    assert image["metadata"] == {"kind": "image", "width": 64, "height": 64}
    assert is_uuid(image["id"]) and image["preview_id"] == image["id"]
    assert list(image) == ["filename", "subfolder", "type", "metadata", "id", "preview_id"]
    assert history["outputs"]["2"]["images"] == [image]
    assert history["meta"]["2"] == {
        "node_id": "2",
        "display_node": "2",
        "parent_node": None,
        "real_node_id": "2",
    }

    rec2, history2 = await client038.run(prompt)
    assert rec2.of_type("execution_cached")[0].data["nodes"] == ["1", "2"]
    assert rec2.of_type("executed")[0].data["output"]["images"] == [image]
    assert history2["outputs"]["2"]["images"] == [image]

    _, old = await client.run(prompt)
    assert set(old["outputs"]["2"]["images"][0]) == {"filename", "subfolder", "type"}


async def test_video_and_audio_metadata(client038: Client) -> None:
    """Videos: kind/width/height/duration/fps/frame_count (media_enrichment.py docstring; value types are
    the emulator's choice); audio gets no metadata but an asset id; animated images are images."""
    client038.emu.faults.set(time_scale=0.01)
    _, video = await client038.run(with_color(workflow("video")))
    (mp4,) = video["outputs"]["5"]["images"]
    expected = {"kind": "video", "width": 64, "height": 64, "duration": 1.0, "fps": 8.0, "frame_count": 8}
    assert mp4["metadata"] == expected
    assert is_uuid(mp4["id"]) and "preview_id" not in mp4
    _, audio = await client038.run(workflow("audio"))
    for node in ("2", "3", "4", "5"):
        (entry,) = audio["outputs"][node]["audio"]
        assert "metadata" not in entry and is_uuid(entry["id"])
    _, animated = await client038.run(with_color(workflow("animated_webp_png")))
    assert animated["outputs"]["3"]["images"][0]["metadata"] == {"kind": "image", "width": 64, "height": 64}


async def test_disable_assets(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    """--disable-assets: no ids, no asset object, "assets": false; metadata stays (not gated on assets)."""
    emu = make_emulator(profile="0.38", extra_args=["--disable-assets"])
    client = Client(emu, session)
    assert (await client.get_json("/features"))["assets"] is False
    _, history = await client.run(with_color(workflow("tiny_image")))
    (image,) = history["outputs"]["2"]["images"]
    assert set(image) == {"filename", "subfolder", "type", "metadata"}
    resp = await client.upload(png_bytes(), "plain.png")
    assert await resp.json() == {"name": "plain.png", "subfolder": "", "type": "input"}
    async with session.get(emu.base_url + "/view", params={"filename": "blake3:" + "0" * 64}) as view:
        assert view.status == 404
    assert not (emu.user_dir / "comfyui.db.lock").exists()
    await client.close()


async def test_upload_answers_with_the_asset(client038: Client) -> None:
    data = png_bytes(color=(unique_number() % 256, 1, 2))
    name = f"asset_{unique_number()}.png"
    resp = await client038.upload(data, name)
    body = await resp.json()
    asset = body.pop("asset")
    assert body == {"name": name, "subfolder": "", "type": "input"}
    assert list(asset) == ["id", "name", "asset_hash", "size", "mime_type", "tags"]
    assert (
        is_uuid(asset["id"]) and asset["asset_hash"].startswith("blake3:") and len(asset["asset_hash"]) == 71
    )
    assert (asset["name"], asset["size"], asset["mime_type"], asset["tags"]) == (
        name,
        len(data),
        "image/png",
        ["input"],
    )
    again = await (await client038.upload(data, name)).json()  # duplicate: same file, same asset
    assert again["name"] == name and again["asset"]["id"] == asset["id"]
    async with client038.session.get(
        client038.base + "/view", params={"filename": asset["asset_hash"]}
    ) as view:
        assert view.status == 200 and await view.read() == data
        assert view.headers["X-Content-Type-Options"] == "nosniff"


async def test_view_headers(client: Client, client038: Client) -> None:
    """newer server.py view_image: nosniff on every file; SVG and other active types as an attachment
    unless an <img> asks (Sec-Fetch-Dest: image).  0.8.0 sends neither header and serves SVG inline."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    name = f"pic_{unique_number()}.svg"
    for c in (client, client038):
        resp = await c.upload(svg, name)
        assert resp.status == 200
    params = {"filename": name, "type": "input"}
    async with client038.session.get(client038.base + "/view", params=params) as resp:
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Content-Disposition"] == f'attachment; filename="{name}"'
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Vary"] == "Sec-Fetch-Dest"
    headers = {"Sec-Fetch-Dest": "image"}
    async with client038.session.get(client038.base + "/view", params=params, headers=headers) as resp:
        assert resp.headers["Content-Type"] == "image/svg+xml"
        assert resp.headers["Content-Disposition"] == f'filename="{name}"'
    async with client.session.get(client.base + "/view", params=params) as resp:
        assert resp.headers["Content-Type"] == "image/svg+xml"
        assert "X-Content-Type-Options" not in resp.headers


# --------------------------------------------------------------------------- /features, /system_stats
async def test_features_and_system_stats(client: Client, client038: Client) -> None:
    """newer feature_flags.py @1924b05ec8 and server.py L626-677 vs 01_meta_endpoints."""
    assert await client038.get_json("/features") == {
        "supports_preview_metadata": True,
        "supports_model_type_tags": True,
        "max_upload_size": 104857600,
        "extension": {"manager": {"supports_v4": True}},
        "node_replacements": True,
        "assets": True,
    }
    recorded = recorded_http("01_meta_endpoints", path="/features")[0]["response"]["json"]
    assert await client.get_json("/features") == recorded

    stats = await client038.get_json("/system_stats")
    assert stats["system"]["comfyui_version"] == "0.38.1"
    assert stats["system"]["required_frontend_version"] == "1.53.6"
    assert list(stats["system"]) == [
        "os",
        "ram_total",
        "ram_free",
        "comfyui_version",
        "required_frontend_version",
        "installed_templates_version",
        "required_templates_version",
        "comfy_package_versions",
        "python_version",
        "pytorch_version",
        "embedded_python",
        "deploy_environment",
        "argv",
    ]
    assert {"name": "comfy-aimdo", "installed": "0.5.5", "required": "0.5.5"} in stats["system"][
        "comfy_package_versions"
    ]
    assert stats["system"]["deploy_environment"] == "local-git"
    assert len(stats["devices"]) == 1
    old = await client.get_json("/system_stats")
    assert "comfy_package_versions" not in old["system"] and "deploy_environment" not in old["system"]

    for c in (client, client038):
        c.emu.faults.set(gpu_count=2)
    devices = (await client038.get_json("/system_stats"))["devices"]
    assert [d["name"].split(" ")[0] for d in devices] == ["cuda:0", "cuda:1"]
    assert [d["index"] for d in devices] == [0, 1]
    assert len((await client.get_json("/system_stats"))["devices"]) == 1


async def test_feature_flag_values(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    """--feature-flag: registered flags converted, others kept as strings, core keys not replaced;
    the WebSocket feature_flags reply carries the same dict."""
    emu = make_emulator(
        profile="0.38",
        extra_args=[
            "--feature-flag",
            "show_signin_button",
            "--feature-flag",
            "x=1",
            "--feature-flag",
            "assets=no",
        ],
    )
    client = Client(emu, session)
    features = await client.get_json("/features")
    assert (features["show_signin_button"], features["x"], features["assets"]) == (True, "1", True)
    rec, _ = await client.ws(first_message={"type": "feature_flags", "data": {}})
    reply = await rec.wait_for(lambda m: m.type == "feature_flags")
    assert reply.data == features
    await client.close()


async def test_partner_nodes_flags(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    """newer: --disable-api-nodes is a deprecated alias of --offline, which disables partner nodes."""
    for flag in ("--disable-api-nodes", "--disable-partner-nodes"):
        emu = make_emulator(profile="0.38", extra_args=[flag])
        info = await Client(emu, session).get_json("/object_info")
        assert "SaveImage" in info and not [n for n, d in info.items() if d.get("api_node")]
        assert ("--disable-api-nodes is deprecated" in emu.log_text()) is (flag == "--disable-api-nodes")


# --------------------------------------------------------------------------- cache
async def test_ram_pressure_cache_keeps_earlier_prompts(
    client: Client,
    client038: Client,
    make_emulator: Callable[..., EmulatorProcess],
    session: aiohttp.ClientSession,
) -> None:
    """newer default (RAM pressure) serves a prompt from cache after a different one ran; 0.8.0's
    classic cache (and the newer one with --cache-classic) only keeps the previous prompt."""
    a, b = with_color(workflow("tiny_image")), with_color(workflow("tiny_image"))
    classic = Client(make_emulator(profile="0.38", extra_args=["--cache-classic"]), session)
    for c, cached in ((client038, ["1", "2"]), (client, []), (classic, [])):
        await c.run(a)
        await c.run(b)
        rec, _ = await c.run(a)
        assert rec.of_type("execution_cached")[0].data["nodes"] == cached, c.emu.profile
    await classic.close()


@pytest.mark.parametrize("profile", ["0.8.0", "0.38"])
async def test_undeclared_inputs_are_part_of_the_cache_key(
    profile: str, client: Client, client038: Client
) -> None:
    """caching.py get_immediate_node_signature (unchanged, @0c5058b992): every input present in the
    prompt counts, declared or not, so a per-job marker on the output node makes it run again."""
    c = client038 if profile == "0.38" else client
    prompt = with_color(workflow("tiny_image"))
    prompt["2"]["inputs"]["comfy_serverless_job"] = "job-a"
    await c.run(prompt)
    prompt["2"]["inputs"]["comfy_serverless_job"] = "job-b"
    rec, history = await c.run(prompt)
    assert rec.of_type("execution_cached")[0].data["nodes"] == ["1"]
    assert [m.data["node"] for m in rec.of_type("executing")][:1] == ["2"]
    assert history["prompt"][2]["2"]["inputs"]["comfy_serverless_job"] == "job-b"
    rec, _ = await c.run(prompt)
    assert rec.of_type("execution_cached")[0].data["nodes"] == ["1", "2"]


@pytest.mark.parametrize("profile", ["0.8.0", "0.38"])
async def test_cached_ui_in_history_without_client_id(
    profile: str, client: Client, client038: Client
) -> None:
    """0.8.0 (execution.py L418-423) files a cached node's ui only for prompts with a client_id; the
    newer emit_cached_output always does."""
    c = client038 if profile == "0.38" else client
    prompt = with_color(workflow("tiny_image"))
    first = await wait_history(c, (await c.post_prompt(prompt))["prompt_id"])
    second = await wait_history(c, (await c.post_prompt(prompt))["prompt_id"])
    assert list(first["outputs"]) == ["2"]
    if profile == "0.38":
        assert second["outputs"]["2"]["images"] == first["outputs"]["2"]["images"]
    else:
        assert second["outputs"] == {}


# --------------------------------------------------------------------------- cancel, jobs
async def test_cancel_job_endpoints(client038: Client) -> None:
    """newer server.py L884-983: running -> interrupted (jobs status cancelled), pending -> removed,
    finished/unknown -> false; batch cancel checks its body first."""
    c = client038
    c.emu.faults.set(node_delay_on_node={"1": 1.5})
    rec, cid = await c.ws()
    running = await c.post_prompt(chain(unique_number()), cid)
    pending = await c.post_prompt(chain(unique_number()), cid)
    await rec.wait_executing("1")
    detail = await c.get_json(f"/api/jobs/{pending['prompt_id']}")
    assert detail["status"] == "pending" and detail["workflow"]["prompt"]["3"]["class_type"] == "SaveImage"
    assert (await c.get_json(f"/api/jobs/{running['prompt_id']}"))["workflow"]["extra_data"][
        "client_id"
    ] == cid

    assert await post(c, f"/api/jobs/{pending['prompt_id']}/cancel", None) == (200, {"cancelled": True})
    assert (await c.get_json("/queue"))["queue_pending"] == []
    assert await post(c, f"/api/jobs/{running['prompt_id']}/cancel", None) == (200, {"cancelled": True})
    await rec.wait_done(running["prompt_id"])
    assert rec.of_type("execution_interrupted")[0].data["node_id"] == "2"
    job = await c.get_json(f"/api/jobs/{running['prompt_id']}")
    assert job["status"] == "cancelled" and "execution_error" not in job
    assert [j["id"] for j in (await c.get_json("/api/jobs", status="cancelled"))["jobs"]][:1] == [
        running["prompt_id"]
    ]
    assert await c.get_json(f"/history/{pending['prompt_id']}") == {}

    # finished or unknown (any string id on this route): a no-op
    assert await post(c, f"/api/jobs/{running['prompt_id']}/cancel", None) == (200, {"cancelled": False})
    assert await post(c, "/api/jobs/not-a-uuid/cancel", None) == (200, {"cancelled": False})

    async with c.session.post(c.base + "/api/jobs/cancel", data=b"{nope") as resp:
        assert (resp.status, await resp.json()) == (400, {"error": "Request body must be valid JSON"})
    assert await post(c, "/api/jobs/cancel", {"job_ids": "x"}) == (400, {"error": "job_ids must be a list"})
    assert await post(c, "/api/jobs/cancel", {"job_ids": [str(uuid.uuid4()), "bad", 7]}) == (
        400,
        {"error": "job_ids contains invalid id(s)", "invalid_ids": ["bad", "7"]},
    )
    assert await post(c, "/api/jobs/cancel", {"job_ids": [str(uuid.uuid4())]}) == (200, {"cancelled": False})


async def test_0_8_0_has_no_cancel_routes_and_reports_failed(client: Client) -> None:
    """0.8.0 only has GET /api/jobs and GET /api/jobs/{id} (server.py L704, L802): the cancel POSTs are
    unknown routes; an interrupted prompt is "failed"; pending jobs carry no workflow (jobs.py L219-225)."""
    some_id = str(uuid.uuid4())
    async with client.session.post(client.base + f"/api/jobs/{some_id}/cancel") as resp:
        assert resp.status == 404
    async with client.session.post(client.base + "/api/jobs/cancel", json={"job_ids": [some_id]}) as resp:
        assert resp.status == 405  # aiohttp: the path matches GET /api/jobs/{job_id} only

    client.emu.faults.set(node_delay_on_node={"1": 1.0})
    rec, cid = await client.ws()
    running = await client.post_prompt(chain(unique_number()), cid)
    pending = await client.post_prompt(chain(unique_number()), cid)
    await rec.wait_executing("1")
    detail = await client.get_json(f"/api/jobs/{pending['prompt_id']}")
    assert detail["status"] == "pending" and "workflow" not in detail
    await client.post_json("/queue", {"delete": [pending["prompt_id"]]})
    await client.post_json("/interrupt", {"prompt_id": running["prompt_id"]})
    await rec.wait_done(running["prompt_id"])
    assert (await client.get_json(f"/api/jobs/{running['prompt_id']}"))["status"] == "failed"
    async with client.session.get(client.base + "/api/jobs", params={"status": "cancelled"}) as resp:
        assert resp.status == 400


async def test_route_faults_match_api_spelled_keys(client038: Client) -> None:
    """route_status/route_delay_s keys may name a route the way ComfyUI spells it (``/api/jobs``)."""
    client038.emu.faults.set(route_status={"/api/jobs": 500, "/queue": 503})
    status, _ = await post(client038, f"/api/jobs/{uuid.uuid4()}/cancel", None)
    assert status == 500
    async with client038.session.get(client038.base + "/api/queue") as resp:
        assert resp.status == 503
    async with client038.session.get(client038.base + "/history") as resp:
        assert resp.status == 200
