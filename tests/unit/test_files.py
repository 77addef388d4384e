"""A job's files in ComfyUI's folders: outputs as local files with their real sizes (downloaded through
/view when ComfyUI's folders are elsewhere), and removal, all done in threads off the event loop."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from comfy_serverless.comfy.client import ComfyClient, ComfyHTTPError
from comfy_serverless.media.files import ComfyFiles
from comfy_serverless.media.outputs import OutputFile


def output(filename: str, subfolder: str = "job-1", folder_type: str = "output") -> OutputFile:
    return OutputFile("9", "image", filename, subfolder, folder_type, "image/png")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    made = {kind: tmp_path / kind for kind in ("input", "output", "temp")}
    for folder in made.values():
        (folder / "job-1").mkdir(parents=True)
    return made


async def test_local_outputs_come_with_their_sizes_and_missing_ones_are_named(folders, tmp_path) -> None:
    (folders["output"] / "job-1" / "a.png").write_bytes(b"x" * 1234)
    files = ComfyFiles(ComfyClient("http://127.0.0.1:9"), folders, tmp_path / "scratch")
    found, missing = await files.localize(
        [output("a.png"), output("gone.png"), output("../../x.png")], "job-1"
    )
    assert [(f.path, f.size) for f in found] == [((folders["output"] / "job-1" / "a.png").resolve(), 1234)]
    assert [m.filename for m in missing] == ["gone.png", "../../x.png"]


async def test_outputs_in_an_unknown_folder_are_downloaded_to_the_jobs_scratch(tmp_path: Path) -> None:
    served: list[dict[str, str]] = []

    async def view(request: web.Request) -> web.Response:
        served.append(dict(request.query))
        if request.query["filename"] == "missing.png":
            return web.Response(status=404, text="nope")
        return web.Response(body=b"\x89PNG" + b"p" * 3_000_000)

    app = web.Application()
    app.router.add_get("/view", view)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = ComfyClient(str(server.make_url("")).rstrip("/"))
    try:
        files = ComfyFiles(client, {}, tmp_path / "scratch")
        (found,), missing = await files.localize([output("big.png", "job-1/sub")], "job-1")
        assert missing == []
        assert found.size == 3_000_004 and found.path.read_bytes()[:4] == b"\x89PNG"
        assert found.path.is_relative_to(tmp_path / "scratch" / "job-1")
        assert served == [{"filename": "big.png", "subfolder": "job-1/sub", "type": "output"}]
        with pytest.raises(ComfyHTTPError) as raised:
            await files.localize([output("missing.png")], "job-1")
        assert raised.value.status == 404
        await files.remove("job-1", [])
        assert not (tmp_path / "scratch" / "job-1").exists()
    finally:
        await client.close()
        await server.close()


async def test_removal_runs_in_a_thread_and_takes_every_folder_of_the_job(
    folders, tmp_path, monkeypatch
) -> None:
    (folders["input"] / "job-1" / "in.png").write_bytes(b"i")
    (folders["output"] / "job-1" / "out.png").write_bytes(b"o")
    (folders["temp"] / "preview.png").write_bytes(b"t")
    (tmp_path / "scratch" / "job-1").mkdir(parents=True)
    (folders["input"] / "job-2").mkdir()
    threads: list[str] = []
    real_rmtree = shutil.rmtree

    def recording_rmtree(path: Path, *args: object, **kwargs: object) -> None:
        threads.append(threading.current_thread().name)
        real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "rmtree", recording_rmtree)
    files = ComfyFiles(ComfyClient("http://127.0.0.1:9"), folders, tmp_path / "scratch")
    await files.remove("job-1", [output("preview.png", "", "temp")])
    assert threads and threading.main_thread().name not in threads
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["input", "input/job-2", "output", "scratch", "temp"]
