"""What differs between ComfyUI versions stays in comfy/: the flags passed at launch follow what the
installed version's argument parser knows, the cancel route is probed, and newer boot failures are
explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from comfy_serverless.comfy.client import ComfyClient
from comfy_serverless.comfy.compat import ServerFeatures, detect_features, explain_boot_failure, stop_prompt
from comfy_serverless.comfy.launch import comfyui_argv
from comfy_serverless.settings import Settings


def install(tmp_path: Path, flags: list[str]) -> Path:
    """A ComfyUI checkout whose argument parser knows ``flags``."""
    root = tmp_path / "comfyui"
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("")
    (root / "comfy" / "cli_args.py").write_text(
        "\n".join(f"parser.add_argument({flag!r})" for flag in flags) + "\n"
    )
    return root


def argv_for(tmp_path: Path, flags: list[str], **settings: Any) -> list[str]:
    root = install(tmp_path, flags)
    folders = {kind: tmp_path / "data" / kind for kind in ("input", "output", "temp")}
    return comfyui_argv(Settings(comfyui_dir=root, **settings), folders)


NEWER = ["--listen", "--port", "--user-directory", "--database-url", "--disable-assets", "--enable-assets"]
OLDER = ["--listen", "--port", "--user-directory", "--database-url"]


def test_newer_comfyui_runs_without_its_assets_system(tmp_path: Path) -> None:
    argv = argv_for(tmp_path, NEWER)
    assert "--disable-assets" in argv
    assert argv[argv.index("--database-url") + 1] == f"sqlite:///{tmp_path / 'data' / 'user' / 'comfyui.db'}"


def test_a_comfyui_without_the_flag_never_gets_it(tmp_path: Path) -> None:
    """0.8.0's argument parser would exit with "unrecognized arguments"."""
    assert "--disable-assets" not in argv_for(tmp_path, OLDER)


@pytest.mark.parametrize(
    "settings",
    [
        {"comfyui_enable_assets": True},
        {"comfyui_args": "--enable-assets"},
        {"comfyui_args": "--disable-assets"},
    ],
)
def test_the_assets_system_stays_when_asked_and_the_flag_is_never_doubled(
    tmp_path: Path, settings: dict
) -> None:
    argv = argv_for(tmp_path, NEWER, **settings)
    assert argv.count("--disable-assets") == (1 if settings.get("comfyui_args") == "--disable-assets" else 0)


def test_assets_database_failures_are_explained_and_lasting_ones_marked() -> None:
    lines = [
        "Python version: 3.12.3",
        "ASSETS_STARTUP_FAILED: in_use",
        "Another ComfyUI is already using this database: '/data/user/comfyui.db'.",
        "Close the other ComfyUI and start this one again.",
        "Or start ComfyUI without the assets system: --disable-assets",
    ]
    failure = explain_boot_failure(lines)
    assert failure is not None and failure.code == "assets_in_use" and not failure.lasting
    assert failure.reason.startswith(
        "ComfyUI could not open its assets database (ASSETS_STARTUP_FAILED: in_use): Another ComfyUI is "
        "already using this database: '/data/user/comfyui.db'. Close the other ComfyUI and start this one again."
    )
    corrupt = explain_boot_failure(["ASSETS_STARTUP_FAILED: corrupt", "The database file is damaged."])
    assert corrupt is not None and corrupt.lasting and corrupt.code == "assets_corrupt"


def test_a_port_taken_before_comfyui_listened_is_named() -> None:
    line = (
        "Port 8188 is already in use on address 127.0.0.1. Please close the other application or use a "
        "different port with --port."
    )
    failure = explain_boot_failure(["Starting server", line])
    assert failure is not None and not failure.lasting
    assert failure.reason == (
        "another program took port 8188 on 127.0.0.1 before ComfyUI could listen there; set COMFYUI_PORT "
        "to a free port"
    )
    assert explain_boot_failure(["Traceback (most recent call last):", "ImportError: no torch"]) is None


class RecordingClient:
    """Stands in for ComfyClient in stop_prompt: records the calls, answers from a script."""

    def __init__(self, queued: set[str]):
        self.calls: list[tuple[str, Any]] = []
        self.queued = queued

    async def cancel_job(self, prompt_id: str) -> bool:
        self.calls.append(("cancel_job", prompt_id))
        self.queued.discard(prompt_id)
        return True

    async def delete_queued(self, ids: list[str]) -> None:
        self.calls.append(("delete_queued", ids))
        self.queued.difference_update(ids)

    async def queued_prompt_ids(self) -> set[str]:
        self.calls.append(("queued_prompt_ids", None))
        return set(self.queued)

    async def interrupt(self, prompt_id: str) -> None:
        self.calls.append(("interrupt", prompt_id))


async def test_newer_comfyui_stops_a_prompt_with_one_atomic_cancel() -> None:
    client = RecordingClient(queued={"p1"})
    removed = await stop_prompt(client, ServerFeatures(job_cancel=True), "p1", lambda: True)  # type: ignore[arg-type]
    assert removed is False
    assert client.calls == [("cancel_job", "p1")]


async def test_older_comfyui_deletes_then_interrupts_a_running_prompt() -> None:
    client = RecordingClient(queued={"p1"})
    client.delete_queued = _keeps_running(client)  # type: ignore[method-assign]
    removed = await stop_prompt(client, ServerFeatures(job_cancel=False), "p1", lambda: True)  # type: ignore[arg-type]
    assert removed is False
    assert client.calls == [("delete_queued", ["p1"]), ("interrupt", "p1")]


def _keeps_running(client: RecordingClient) -> Any:
    async def delete_queued(ids: list[str]) -> None:
        client.calls.append(("delete_queued", ids))  # a running prompt is not in the pending queue

    return delete_queued


async def test_a_prompt_still_waiting_is_just_removed() -> None:
    for features in (ServerFeatures(job_cancel=True), ServerFeatures(job_cancel=False)):
        client = RecordingClient(queued={"p1"})
        assert await stop_prompt(client, features, "p1", lambda: False) is True  # type: ignore[arg-type]
        assert ("interrupt", "p1") not in client.calls


@pytest.mark.parametrize(("route", "expected"), [(True, True), (False, False)])
async def test_the_cancel_route_is_probed_and_the_version_read(route: bool, expected: bool) -> None:
    probed: list[str] = []

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"system": {"comfyui_version": "0.38.1" if route else "0.8.0"}, "devices": []}
        )

    async def cancel(request: web.Request) -> web.Response:
        probed.append(request.match_info["job_id"])
        return web.json_response({"cancelled": False})

    app = web.Application()
    app.router.add_get("/system_stats", stats)
    if route:
        app.router.add_post("/api/jobs/{job_id}/cancel", cancel)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = ComfyClient(str(server.make_url("")).rstrip("/"))
    try:
        features = await detect_features(client)
    finally:
        await client.close()
        await server.close()
    assert features == ServerFeatures(version="0.38.1" if route else "0.8.0", job_cancel=expected)
    assert len(probed) == (1 if route else 0)
