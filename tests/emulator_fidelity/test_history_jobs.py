"""/history and /api/jobs (21_history_and_jobs, 19_queue_delete_clear, 01_meta_endpoints)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from .support import Client, EmulatorProcess, recorded_http, with_color, workflow


async def test_history_and_jobs(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(time_scale=0.05)
    client = Client(emu, session)
    _, h0 = await client.run(with_color(workflow("tiny_image")))
    _, h1 = await client.run(with_color(workflow("runtime_error")))
    _, h2 = await client.run(
        with_color(workflow("tiny_image")), extra_data={"extra_pnginfo": {"workflow": {"note": "anchor"}}}
    )
    ids = [h["prompt"][1] for h in (h0, h1, h2)]

    # max_items alone: the LAST n entries, oldest first; with offset: counted from the start (21)
    assert list(await client.get_json("/history", max_items="2")) == ids[1:]
    assert list(await client.get_json("/history", max_items="1", offset="0")) == ids[:1]
    assert list(await client.get_json("/history")) == ids
    assert await client.get_json(f"/api/history/{ids[2]}") == await client.get_json(f"/history/{ids[2]}")
    assert list(h2["prompt"][3]) == ["extra_pnginfo", "client_id", "create_time"]
    assert await client.get_json("/history/00000000-0000-0000-0000-000000000000") == {}

    # jobs: filters, order (newest first), pagination, 400 for a bad status
    jobs = await client.get_json("/api/jobs", status="completed", limit="1")
    assert [j["id"] for j in jobs["jobs"]] == [ids[2]]
    assert jobs["pagination"] == {"offset": 0, "limit": 1, "total": 2, "has_more": True}
    (recorded,) = recorded_http("21_history_and_jobs", path="/api/jobs")[:1]
    assert list(jobs["jobs"][0]) == list(recorded["response"]["json"]["jobs"][0])
    assert jobs["jobs"][0]["preview_output"] == {
        **h2["outputs"]["2"]["images"][0],
        "nodeId": "2",
        "mediaType": "images",
    }
    failed = await client.get_json("/api/jobs", status="failed")
    (job,) = failed["jobs"]
    assert job["execution_error"]["exception_type"] == "IndexError"
    assert list(job) == [
        "id",
        "status",
        "priority",
        "create_time",
        "execution_start_time",
        "execution_end_time",
        "execution_error",
        "outputs_count",
    ]
    bogus = recorded_http("21_history_and_jobs", path="/api/jobs")[2]
    async with session.get(emu.base_url + "/api/jobs", params={"status": "bogus"}) as resp:
        assert resp.status == 400
        assert await resp.json() == bogus["response"]["json"]

    detail_recorded = next(
        e for e in recorded_http("21_history_and_jobs") if e["request"]["path"].startswith("/api/jobs/")
    )
    detail = await client.get_json(f"/api/jobs/{ids[2]}")
    assert list(detail) == list(detail_recorded["response"]["json"])
    assert detail["workflow"] == {"prompt": h2["prompt"][2], "extra_data": h2["prompt"][3]}
    assert detail["execution_status"] == h2["status"]
    async with session.get(emu.base_url + "/api/jobs/00000000-0000-0000-0000-000000000000") as resp:
        assert resp.status == 404 and await resp.json() == {"error": "Job not found"}

    # delete one history entry; POST /free answers 200 with an empty body
    resp = await client.post_json("/history", {"delete": [ids[2]]})
    assert resp.status == 200
    assert await client.get_json(f"/history/{ids[2]}") == {}
    async with session.post(
        emu.base_url + "/free", json={"unload_models": True, "free_memory": True}
    ) as resp:
        assert resp.status == 200 and await resp.read() == b""
    await client.post_json("/history", {"clear": True})
    assert await client.get_json("/history") == {}
    await client.close()


async def test_free_memory_clears_the_cache(client: Client) -> None:
    prompt = with_color(workflow("tiny_image"))
    await client.run(prompt)
    rec, _ = await client.run(prompt)
    assert rec.of_type("execution_cached")[0].data["nodes"] == ["1", "2"]
    await client.clear_cache()
    rec, _ = await client.run(prompt)
    assert rec.of_type("execution_cached")[0].data["nodes"] == []


async def test_text_outputs_do_not_count_as_job_outputs(client: Client) -> None:
    """19: the text-only prompt of 11 has outputs_count 0 and no preview_output."""
    _, history = await client.run(with_color(workflow("text_output")))
    job = await client.get_json(f"/api/jobs/{history['prompt'][1]}")
    assert job["outputs_count"] == 0 and "preview_output" not in job
