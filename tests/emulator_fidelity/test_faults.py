"""Every fault switch of tests/emulator/README.md does what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from .support import Client, EmulatorProcess, WSRecorder, list_dir, png_bytes, with_color, workflow

INVERT: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
}
AIOHTTP_500 = "500 Internal Server Error\n\nServer got itself in trouble"


async def _wait_exit(emu: EmulatorProcess, wait_s: float = 10.0) -> int:
    deadline = time.monotonic() + wait_s
    while emu.returncode() is None:
        assert time.monotonic() < deadline, "emulator did not exit"
        await asyncio.sleep(0.05)
    code = emu.returncode()
    assert code is not None
    return code


# --------------------------------------------------------------------------- boot
def test_boot_delay(make_emulator: Callable[..., EmulatorProcess]) -> None:
    started = time.monotonic()
    make_emulator(faults={"boot_delay_s": 0.6})
    assert time.monotonic() - started >= 0.6


async def test_boot_fail_prints_a_traceback_and_exits_1(
    make_emulator: Callable[..., EmulatorProcess],
) -> None:
    emu = make_emulator(faults={"boot_fail": True}, wait=False)
    assert await _wait_exit(emu) == 1
    log = emu.log_text()
    assert "Traceback (most recent call last):" in log
    assert log.rstrip().endswith("RuntimeError: No CUDA GPUs are available")
    assert "Starting server" not in log
    custom = make_emulator(
        faults={"boot_fail": "ImportError: cannot import name 'x'", "boot_fail_exit_code": 3}, wait=False
    )
    assert await _wait_exit(custom) == 3
    assert custom.log_text().rstrip().endswith("ImportError: cannot import name 'x'")


async def test_boot_fail_times_counts_down_in_the_file(make_emulator: Callable[..., EmulatorProcess]) -> None:
    emu = make_emulator(faults={"boot_fail_times": 2, "time_scale": 0.5}, wait=False)
    assert await _wait_exit(emu) == 1
    assert emu.faults.read() == {"boot_fail_times": 1, "time_scale": 0.5}
    emu.start()
    assert await _wait_exit(emu) == 1
    assert emu.faults.read() == {"time_scale": 0.5}
    emu.start()
    emu.wait_ready()
    assert "To see the GUI go to: http://127.0.0.1:" in emu.log_text()


# --------------------------------------------------------------------------- crashes and hangs
async def test_crash_on_class_once(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(
        faults={"crash_on_class": "ImageInvert", "crash_once": True, "crash_message": "Killed"}
    )
    client = Client(emu, session)
    rec, cid = await client.ws()
    await client.post_prompt(INVERT, cid)
    assert await _wait_exit(emu) == 137
    await rec.wait_closed()
    assert rec.types()[-1] == "executing" and rec.messages[-1].data["node"] == "2"
    assert emu.faults.read() == {"crash_message": "Killed"}  # crash_once removed the crash itself
    assert emu.log_text().rstrip().endswith("Killed")
    emu.start()
    emu.wait_ready()
    _, history = await client.run(INVERT)
    assert history["status"]["status_str"] == "success"
    await client.close()


async def test_crash_on_node_with_a_signal_stays_armed(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(faults={"crash_on_node": "3", "crash_signal": "SIGKILL"})
    client = Client(emu, session)
    await client.post_prompt(INVERT)
    assert await _wait_exit(emu) == -9
    assert emu.faults.read()["crash_on_node"] == "3"  # not crash_once: still armed after a restart
    emu.start()
    emu.wait_ready()
    await client.post_prompt(INVERT)
    assert await _wait_exit(emu) == -9


async def test_hang_ignores_interrupt_but_http_answers(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(faults={"hang_on_class": "ImageInvert"})
    client = Client(emu, session)
    rec, cid = await client.ws()
    posted = await client.post_prompt(INVERT, cid)
    await rec.wait_executing("2")
    await client.post_json("/interrupt", {})
    await asyncio.sleep(0.5)
    queue = await client.get_json("/queue")
    assert [i[1] for i in queue["queue_running"]] == [posted["prompt_id"]]
    assert "execution_interrupted" not in rec.types()
    async with session.get(emu.base_url + "/system_stats", timeout=aiohttp.ClientTimeout(total=1)) as resp:
        assert resp.status == 200
    await client.close()


async def test_hang_event_loop_blocks_http(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(faults={"hang_event_loop_on_class": "ImageInvert", "hang_event_loop_s": 1.0})
    client = Client(emu, session)
    rec, cid = await client.ws()
    posted = await client.post_prompt(INVERT, cid)
    await rec.wait_executing("2")
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(emu.base_url + "/system_stats", timeout=aiohttp.ClientTimeout(total=0.5)):
            pass
    # with hang_event_loop_s the process comes back and finishes the prompt
    await rec.wait_done(posted["prompt_id"], wait_s=10)
    await client.close()


# --------------------------------------------------------------------------- websocket drops
async def test_drop_ws_after_messages_then_refuse_reconnects(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(
        faults={"drop_ws_after_messages": 3, "refuse_ws_s": 0.5, "node_delay_s": {"SaveImage": 0.3}}
    )
    client = Client(emu, session)
    rec, cid = await client.ws()
    posted = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    await rec.wait_closed()
    # 3 messages of the prompt (execution_start, execution_cached, progress_state), then the drop
    assert rec.types() == [
        "status",
        "status",
        "status",
        "execution_start",
        "execution_cached",
        "progress_state",
    ]
    assert "drop_ws_after_messages" not in emu.faults.read()  # one-shot
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(emu.ws_url(cid))
    assert refused.value.status == 503
    await asyncio.sleep(0.6)
    again = WSRecorder(session, emu.ws_url(cid))
    await again.connect()
    await again.wait_for(lambda m: m.type == "status")
    for _ in range(50):
        if await client.get_json(f"/history/{posted['prompt_id']}"):
            break
        await asyncio.sleep(0.1)
    history = await client.history(posted["prompt_id"])
    assert history["status"]["status_str"] == "success"
    await again.close()
    # the next prompt is not affected
    rec2, _ = await client.run(with_color(workflow("tiny_image")))
    assert rec2.types()[-1] == "executing"
    await client.close()


async def test_drop_ws_close_mode(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(faults={"drop_ws_after_messages": 1, "drop_ws_mode": "close"})
    client = Client(emu, session)
    rec, cid = await client.ws()
    await client.post_prompt(with_color(workflow("tiny_image")), cid)
    await rec.wait_closed()
    assert rec.ws is not None and rec.ws.close_code == 1011
    assert rec.types()[-1] == "execution_start"
    await client.close()


async def test_drop_ws_message_types(client: Client) -> None:
    client.emu.faults.set(drop_ws_message_types=["executed", "execution_success"])
    rec, history = await client.run(with_color(workflow("tiny_image")))
    assert "executed" not in rec.types() and "execution_success" not in rec.types()
    assert history["outputs"]["2"]["images"]


# --------------------------------------------------------------------------- node faults
async def test_disk_full_on_save_and_upload(client: Client) -> None:
    client.emu.faults.set(disk_full=True)
    before = set(list_dir(client.emu.output_dir))
    rec, history = await client.run(with_color(workflow("tiny_image")))
    (error,) = [m.data for m in rec.messages if m.type == "execution_error"]
    assert (error["node_id"], error["node_type"]) == ("2", "SaveImage")
    assert error["exception_type"] == "OSError"
    assert error["exception_message"] == "[Errno 28] No space left on device\n"
    assert error["traceback"][0].startswith('  File "/opt/ComfyUI/execution.py", line 518, in execute')
    assert set(error["current_inputs"]) == {"images", "filename_prefix", "prompt", "extra_pnginfo"}
    assert history["status"]["status_str"] == "error"
    new = set(list_dir(client.emu.output_dir)) - before
    assert len(new) == 1 and (client.emu.output_dir / new.pop()).stat().st_size == 0  # truncated file

    form = aiohttp.FormData()
    form.add_field("image", png_bytes(), filename="full.png", content_type="image/png")
    async with client.session.post(client.base + "/upload/image", data=form) as resp:
        assert resp.status == 500
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await resp.text() == AIOHTTP_500
    client.emu.faults.set(disk_full=False)
    _, history = await client.run(with_color(workflow("tiny_image")))
    assert history["status"]["status_str"] == "success"


async def test_node_delay(client: Client) -> None:
    client.emu.faults.set(node_delay_s={"SaveImage": 0.5})
    started = time.monotonic()
    await client.run(with_color(workflow("tiny_image")))
    assert time.monotonic() - started >= 0.5


async def test_oom_and_raise_on_class(client: Client) -> None:
    client.emu.faults.set(oom_on_class="ImageInvert")
    rec, _ = await client.run(with_color(INVERT))
    (error,) = [m.data for m in rec.messages if m.type == "execution_error"]
    assert error["exception_type"] == "torch.OutOfMemoryError"
    assert "This error means you ran out of memory on your GPU." in error["exception_message"]
    client.emu.faults.set(
        oom_on_class=None, raise_on_class={"ImageInvert": {"type": "ValueError", "message": "boom"}}
    )
    rec, _ = await client.run(with_color(INVERT))
    (error,) = [m.data for m in rec.messages if m.type == "execution_error"]
    assert (error["exception_type"], error["exception_message"]) == ("ValueError", "boom\n")


# --------------------------------------------------------------------------- HTTP faults
async def test_slow_routes_and_forced_status(client: Client) -> None:
    client.emu.faults.set(
        slow_system_stats_s=0.4, route_delay_s={"/queue": 0.3}, route_status={"/history": 503}
    )
    started = time.monotonic()
    await client.get_json("/system_stats")
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    await client.get_json("/api/queue")
    assert time.monotonic() - started >= 0.3
    async with client.session.get(client.base + "/history/some-id") as resp:
        assert resp.status == 503
    client.emu.faults.set(slow_object_info_s=0.3)
    started = time.monotonic()
    async with client.session.get(client.base + "/object_info") as resp:
        assert resp.status == 200
    assert time.monotonic() - started >= 0.3


async def test_gc_pause_between_prompts(client: Client) -> None:
    client.emu.faults.set(gc_pause_s=0.3)
    rec, cid = await client.ws()
    first = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    await rec.wait_done(first["prompt_id"])
    started = time.monotonic()
    second = await client.post_prompt(with_color(workflow("tiny_image")), cid)
    await rec.wait_done(second["prompt_id"])
    assert time.monotonic() - started >= 0.25


async def test_faults_survive_restart_and_are_reread(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    """The file is re-read at each node start: flipping a fault needs no restart."""
    emu = make_emulator()
    client = Client(emu, session)
    _, history = await client.run(with_color(workflow("tiny_image")))
    assert history["status"]["status_str"] == "success"
    emu.faults.set(raise_on_class={"SaveImage": "nope"})
    _, history = await client.run(with_color(workflow("tiny_image")))
    assert history["status"]["status_str"] == "error"
    emu.restart()
    _, history = await client.run(with_color(workflow("tiny_image")))
    assert history["status"]["status_str"] == "error"
    emu.faults.clear()
    _, history = await client.run(with_color(workflow("tiny_image")))
    assert history["status"]["status_str"] == "success"
    await client.close()
