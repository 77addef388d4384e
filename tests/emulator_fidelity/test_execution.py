"""Caching (04), interrupts (17, 18), the queue (19, 24) and execution order against the transcripts."""

from __future__ import annotations

import asyncio
import copy
import sys
from typing import Any

import pytest

from .support import (
    HERE,
    Client,
    executing_nodes,
    list_dir,
    recorded_ws,
    strip_volatile,
    transcript,
    unique_number,
    with_color,
    workflow,
)

sys.path.insert(0, str(HERE.parent / "emulator"))


def statuses(messages: list[Any]) -> list[int]:
    return [m.data["status"]["exec_info"]["queue_remaining"] for m in messages if m.type == "status"]


async def test_cached_rerun(client: Client) -> None:
    """04: identical prompt -> every node cached, no executing per node, executed re-sent with the OLD
    file name and nothing written; only the prefix changed -> only SaveImage runs again."""
    rec, cid = await client.ws()
    prompt = with_color(workflow("tiny_image"))
    first = await client.post_prompt(prompt, cid)
    await rec.wait_done(first["prompt_id"])
    files_before = list_dir(client.emu.output_dir)
    second = await client.post_prompt(copy.deepcopy(prompt), cid)
    await rec.wait_done(second["prompt_id"])
    assert list_dir(client.emu.output_dir) == files_before
    changed = copy.deepcopy(prompt)
    changed["2"]["inputs"]["filename_prefix"] = "anchor_tiny_changed"
    third = await client.post_prompt(changed, cid)
    await rec.wait_done(third["prompt_id"])

    assert rec.types() == transcript("04_cached_rerun")["ws_message_type_sequence"]
    cached = [m.data["nodes"] for m in rec.messages if m.type == "execution_cached"]
    assert cached == [[], ["1", "2"], ["1"]]
    executed = [m.data["output"]["images"][0]["filename"] for m in rec.messages if m.type == "executed"]
    assert executed[1] == executed[0]
    assert executed[2].startswith("anchor_tiny_changed_")
    # the cached output node's progress_state uses integer 1/1 (recorded)
    recorded_states = recorded_ws("04_cached_rerun", "progress_state")
    mine = [m.data for m in rec.messages if m.type == "progress_state"]
    assert strip_volatile(mine[4]) == strip_volatile(recorded_states[4])
    assert mine[4]["nodes"]["2"]["value"] == 1 and isinstance(mine[4]["nodes"]["2"]["value"], int)
    history = await client.history(second["prompt_id"])
    assert history["outputs"]["2"]["images"][0]["filename"] == executed[0]
    assert history["meta"] == {
        "2": {"node_id": "2", "display_node": "2", "parent_node": None, "real_node_id": "2"}
    }


async def test_changed_input_file_is_not_cached(client: Client) -> None:
    """LoadImage hashes its file (ComfyUI's IS_CHANGED): same name, new bytes -> it runs again."""
    from .support import png_bytes

    await client.upload(png_bytes(color=(1, 2, 3)), "cache_probe.png", overwrite="true")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "cache_probe.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "probe"}},
    }
    await client.run(prompt)
    rec2, _ = await client.run(copy.deepcopy(prompt))
    assert rec2.of_type("execution_cached")[0].data["nodes"] == ["1", "2"]
    await client.upload(png_bytes(color=(9, 9, 9)), "cache_probe.png", overwrite="true")
    rec3, _ = await client.run(copy.deepcopy(prompt))
    assert rec3.of_type("execution_cached")[0].data["nodes"] == []


def _long_chain(seed: int, size: int = 2048) -> dict[str, Any]:
    prompt = workflow("long_chain")
    prompt["2"]["inputs"]["seed"] = seed
    prompt["1"]["inputs"]["width"] = prompt["1"]["inputs"]["height"] = size
    return prompt


async def test_interrupt_global_at_next_node_boundary(client: Client) -> None:
    """17: POST /interrupt (no body) while node 4 runs -> execution_interrupted at node 5."""
    client.emu.faults.set(time_scale=0.5)  # 512^2: ImageBlur(r=31) ~0.14 s per node
    rec, cid = await client.ws()
    posted = await client.post_prompt(_long_chain(unique_number(), 512), cid)
    await rec.wait_executing("4")
    queue = await client.get_json("/queue")
    assert [item[1] for item in queue["queue_running"]] == [posted["prompt_id"]]
    assert len(queue["queue_running"][0]) == 5
    async with client.session.post(client.base + "/interrupt") as resp:
        assert resp.status == 200 and await resp.read() == b""
    await rec.wait_done(posted["prompt_id"])
    assert rec.types() == transcript("17_interrupt_global")["ws_message_type_sequence"]
    (interrupted,) = [m.data for m in rec.messages if m.type == "execution_interrupted"]
    assert (interrupted["node_id"], interrupted["node_type"]) == ("5", "ImageBlur")
    assert sorted(interrupted["executed"]) == ["1", "2", "3", "4"]
    assert list(interrupted) == ["prompt_id", "node_id", "node_type", "executed", "timestamp"]
    history = await client.history(posted["prompt_id"])
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    assert [m[0] for m in history["status"]["messages"]][-1] == "execution_interrupted"
    assert history["outputs"] == {} and history["meta"] == {}
    assert await client.get_json("/queue") == {"queue_running": [], "queue_pending": []}


async def test_interrupt_targeted(client: Client) -> None:
    """18: {prompt_id: other} is ignored, {prompt_id: running} interrupts at the next node; node 1 is
    cached from the previous (interrupted) run."""
    client.emu.faults.set(time_scale=0.5)  # 512^2: ImageBlur(r=31) ~0.14 s per node
    rec0, cid0 = await client.ws()
    warm = await client.post_prompt(_long_chain(unique_number(), 512), cid0)
    await rec0.wait_executing("3")
    await client.post_json("/interrupt", {})
    await rec0.wait_done(warm["prompt_id"])

    rec, cid = await client.ws()
    posted = await client.post_prompt(_long_chain(unique_number(), 512), cid)
    await rec.wait_executing("3")
    resp = await client.post_json("/interrupt", {"prompt_id": "not-the-running-one"})
    assert resp.status == 200
    await rec.wait_executing("5")
    await client.post_json("/interrupt", {"prompt_id": posted["prompt_id"]})
    await rec.wait_done(posted["prompt_id"])
    assert rec.types() == transcript("18_interrupt_targeted")["ws_message_type_sequence"]
    (interrupted,) = [m.data for m in rec.messages if m.type == "execution_interrupted"]
    assert interrupted["node_id"] == "6"
    assert sorted(interrupted["executed"]) == ["2", "3", "4", "5"]
    assert rec.of_type("execution_cached")[0].data["nodes"] == ["1"]


async def test_stale_interrupt_does_not_hit_the_next_prompt(client: Client) -> None:
    await client.post_json("/interrupt", {})
    _, history = await client.run(with_color(workflow("tiny_image")))
    assert history["status"]["status_str"] == "success"


async def test_interrupt_inside_a_progress_node(client: Client) -> None:
    """Nodes with a progress bar notice an interrupt at their next tick (ComfyUI's progress hook)."""
    client.emu.faults.set(time_scale=1.0)
    rec, cid = await client.ws()
    prompt = workflow("ksampler_random_sd15")
    prompt["5"]["inputs"]["steps"] = 50
    prompt["4"]["inputs"]["width"] = 64
    prompt["4"]["inputs"]["height"] = 64
    prompt["5"]["inputs"]["seed"] = unique_number()
    client.emu.faults.set(time_scale=0.02)
    posted = await client.post_prompt(prompt, cid)
    await rec.wait_for(lambda m: m.type == "progress" and m.data["value"] == 2)
    await client.post_json("/interrupt", {})
    await rec.wait_done(posted["prompt_id"])
    (interrupted,) = [m.data for m in rec.messages if m.type == "execution_interrupted"]
    assert interrupted["node_id"] == "5"
    assert len(rec.of_type("progress")) < 50


async def test_queue_delete_clear_and_front(client: Client) -> None:
    """19: GET /queue shape (pending list in heap order), delete pending, delete running (no effect),
    clear, interrupt; deleted prompts get no history."""
    client.emu.faults.set(time_scale=0.05, node_delay_s={"ImageAddNoise": 0.6})
    rec, cid = await client.ws()
    a = await client.post_prompt(_long_chain(unique_number(), 512), cid)
    tiny = with_color(workflow("tiny_image"))
    b = await client.post_prompt(tiny, cid)
    c = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    d = await client.post_prompt(with_color(workflow("tiny_image")), cid, front=True)
    assert d["number"] == -(c["number"] + 1)
    queue = await client.get_json("/queue")
    assert [i[1] for i in queue["queue_running"]] == [a["prompt_id"]]
    assert [i[0] for i in queue["queue_pending"]] == [d["number"], c["number"], b["number"]]
    assert [i[1] for i in queue["queue_pending"]] == [d["prompt_id"], c["prompt_id"], b["prompt_id"]]
    assert queue["queue_pending"][0][3]["client_id"] == cid and len(queue["queue_pending"][0]) == 5

    jobs = await client.get_json("/api/jobs")
    by_id = {j["id"]: j for j in jobs["jobs"]}
    assert by_id[a["prompt_id"]]["status"] == "in_progress"
    assert by_id[d["prompt_id"]] == {
        "id": d["prompt_id"],
        "status": "pending",
        "priority": d["number"],
        "create_time": queue["queue_pending"][0][3]["create_time"],
        "outputs_count": 0,
    }
    assert jobs["jobs"][0]["id"] == d["prompt_id"]  # newest first

    assert (await client.post_json("/queue", {"delete": [b["prompt_id"]]})).status == 200
    queue = await client.get_json("/queue")
    assert [i[1] for i in queue["queue_pending"]] == [d["prompt_id"], c["prompt_id"]]
    await client.post_json("/queue", {"delete": [a["prompt_id"]]})  # running: no effect
    assert len((await client.get_json("/queue"))["queue_running"]) == 1
    await client.post_json("/queue", {"clear": True})
    assert (await client.get_json("/queue"))["queue_pending"] == []
    await client.post_json("/interrupt", {})
    await rec.wait_done(a["prompt_id"])
    assert rec.of_type("execution_interrupted")[0].data["node_id"] in ("3", "2")
    # status broadcasts: put A, get A, B, C, D, delete B, clear, done  (19: 1 1 2 3 4 3 1 0)
    assert statuses(rec.messages) == [0, 1, 1, 2, 3, 4, 3, 1, 0]
    for deleted in (b, c, d):
        assert await client.get_json(f"/history/{deleted['prompt_id']}") == {}


async def test_two_prompts_back_to_back(client: Client) -> None:
    """24: the second prompt starts after the first one's executing null; numbers increment."""
    rec, cid = await client.ws()
    client.emu.faults.set(time_scale=0.05, node_delay_s={"SaveImage": 0.2})
    first = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    second = await client.post_prompt(with_color(workflow("tiny_image")), cid, prompt_id="6a5a269e-own-id")
    assert second["number"] == first["number"] + 1 and second["prompt_id"] == "6a5a269e-own-id"
    await rec.wait_done(second["prompt_id"])
    # the second POST's status landed between execution_start and execution_cached in the recording
    # only because real ComfyUI took 47 ms there; compare the rest of the order and the status values
    expected = transcript("24_two_prompts_queued")["ws_message_type_sequence"]
    assert [t for t in rec.types() if t != "status"] == [t for t in expected if t != "status"]
    done_first = rec.types().index("executing", rec.types().index("execution_success"))
    start_second = [i for i, t in enumerate(rec.types()) if t == "execution_start"][1]
    assert done_first < start_second
    assert statuses(rec.messages) == [0, 1, 1, 2, 1, 1, 0]


@pytest.mark.parametrize(
    "scenario",
    [
        "08_animated_webp_png",
        "09_video_mp4_webm",
        "10_audio",
        "15_progress_upscale",
        "25_ksampler_no_preview",
    ],
)
def test_execution_list_reproduces_recorded_order(scenario: str) -> None:
    """Given the recorded outputs_to_execute order (a Python set on the real server), the emulator's
    execution list picks nodes in exactly the recorded order."""
    from comfy_emulator.catalog import Catalog
    from comfy_emulator.execution import ExecutionList
    from comfy_emulator.folders import FolderPaths

    data = transcript(scenario)
    history = next(
        e["response"]["json"]
        for e in data["events"]
        if e["kind"] == "http" and "/history/" in e["request"]["path"]
    )
    (entry,) = history.values()
    prompt, outputs = entry["prompt"][2], entry["prompt"][4]
    folders = FolderPaths("/nonexistent", "/tmp/i", "/tmp/o", "/tmp/t", "/tmp/u")
    exec_list = ExecutionList(prompt, Catalog(folders), lambda n: False)
    for node in outputs:
        exec_list.add_node(node)
    order = []
    while not exec_list.is_empty():
        node = exec_list.stage()
        order.append(node)
        exec_list.complete(node)
    recorded = [m["node"] for m in recorded_ws(scenario, "executing") if m["node"] is not None]
    assert order == recorded


async def test_tiny_prompt_latency(client: Client) -> None:
    """PROTOCOL.md: a tiny workflow takes a few ms from POST to executing null (median 4.5 ms)."""
    client.emu.faults.set(time_scale=1.0)
    rec, cid = await client.ws()
    loop = asyncio.get_running_loop()
    started = loop.time()
    posted = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    await rec.wait_done(posted["prompt_id"])
    assert loop.time() - started < 0.25


async def test_blur_cost_scales_with_pixels_and_kernel(client: Client) -> None:
    """16: 6x ImageBlur(r=31) on 2048^2 took ~29 s (~4.6 s each); the cost is proportional to
    pixels * kernel area, so on 1024^2 at time_scale 0.1 the chain takes ~0.7 s."""
    client.emu.faults.set(time_scale=0.1)
    rec, cid = await client.ws()
    loop = asyncio.get_running_loop()
    started = loop.time()
    posted = await client.post_prompt(_long_chain(unique_number(), 1024), cid)
    await rec.wait_done(posted["prompt_id"])
    elapsed = loop.time() - started
    assert 0.65 < elapsed < 2.5, elapsed
    assert executing_nodes(rec.messages) == [str(i) for i in range(1, 11)] + [None]


async def test_prefix_outside_the_output_folder_fails_like_comfyui(client: Client) -> None:
    prompt = with_color(workflow("tiny_image"))
    prompt["2"]["inputs"]["filename_prefix"] = "../../escape"
    rec, history = await client.run(prompt)
    (error,) = [m.data for m in rec.messages if m.type == "execution_error"]
    assert error["exception_type"] == "Exception"
    assert error["exception_message"].startswith(
        "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: "
    )
    assert error["traceback"][-1].startswith('  File "/opt/ComfyUI/folder_paths.py"')
    assert history["status"]["status_str"] == "error"


async def test_unreachable_garbage_nodes_do_not_break_execution(client: Client) -> None:
    prompt = with_color(workflow("tiny_image"))
    prompt["9"] = {"class_type": "ImageInvert", "inputs": ["not", "a", "dict"]}
    _, history = await client.run(prompt)
    assert history["status"]["status_str"] == "success"


async def test_other_catalogue_classes_run_as_pass_through(client: Client) -> None:
    """Classes without an emulated implementation pass matching inputs through and make dummy
    outputs; output nodes with no ui send no executed and leave no history output."""
    prompt = with_color(workflow("tiny_image"))
    prompt["5"] = {
        "class_type": "ImageSharpen",
        "inputs": {"image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0},
    }
    prompt["2"]["inputs"]["images"] = ["5", 0]
    prompt["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    prompt["7"] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": ["6", 0], "filename_prefix": "latents/x"},
    }
    rec, history = await client.run(prompt)
    assert history["status"]["status_str"] == "success"
    assert [m.data["node"] for m in rec.of_type("executed")] == ["2"]
    assert list(history["outputs"]) == ["2"]
    assert sorted(history["prompt"][4]) == ["2", "7"]


async def test_secret_extra_data_never_leaves_the_server(client: Client) -> None:
    rec, cid = await client.ws()
    posted = await client.post_prompt(
        with_color(workflow("tiny_image")), cid, extra_data={"api_key_comfy_org": "secret", "keep": 1}
    )
    await rec.wait_done(posted["prompt_id"])
    history = await client.history(posted["prompt_id"])
    assert history["prompt"][3] == {
        "keep": 1,
        "client_id": cid,
        "create_time": history["prompt"][3]["create_time"],
    }
    assert "secret" not in str(await client.get_json("/history"))


async def test_second_socket_with_the_same_client_id(client: Client) -> None:
    """One socket per clientId: a new connection takes over, and when the old one closes the server
    forgets the clientId altogether (ComfyUI pops it unconditionally), so the new socket stops getting
    the prompt's messages until it reconnects."""
    old, cid = await client.ws()
    new, _ = await client.ws(client_id=cid)
    posted = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    await new.wait_done(posted["prompt_id"])
    assert "execution_start" not in old.types()
    await old.close()
    await asyncio.sleep(0.1)
    posted = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    for _ in range(50):
        if await client.get_json(f"/history/{posted['prompt_id']}"):
            break
        await asyncio.sleep(0.05)
    assert posted["prompt_id"] not in [
        m.data.get("prompt_id") for m in new.messages if m.kind == "text" and isinstance(m.data, dict)
    ]
