"""The emulator starts like ComfyUI: its command line, directories, extra model paths and log lines."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from .support import HERE, Client, EmulatorProcess, free_port_for_tests, with_color, workflow

MAIN = HERE.parent / "emulator" / "main.py"


async def test_extra_model_paths_yaml(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """ComfyUI's extra_model_paths format: base_path, multi-line folder lists, legacy names, and paths
    relative to the YAML file when there is no base_path."""
    shared = tmp_path / "shared-models"
    for rel in (
        "ckpts/a.safetensors",
        "more_ckpts/b.ckpt",
        "loras/l.safetensors",
        "clip/c.safetensors",
        "unet/u.safetensors",
        "upscale/x4.pth",
        "ckpts/readme.txt",
    ):
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_bytes(b"0")
    local = tmp_path / "cfg" / "local_models" / "checkpoints"
    local.mkdir(parents=True)
    (local / "z.safetensors").write_bytes(b"0")
    yaml_file = tmp_path / "cfg" / "extra_model_paths.yaml"
    yaml_file.write_text(
        "# comment\n"
        "comfyui:\n"
        f"    base_path: {shared}\n"
        "    is_default: true\n"
        "    checkpoints: |\n"
        "        ckpts\n"
        "        more_ckpts\n"
        "    loras: loras/\n"
        "    clip: clip\n"
        "    unet: unet\n"
        "    upscale_models: upscale\n"
        "other:\n"
        "    checkpoints: local_models/checkpoints\n"
    )
    emu = make_emulator(extra_args=["--extra-model-paths-config", str(yaml_file)])
    client = Client(emu, session)
    assert await client.get_json("/models/checkpoints") == ["a.safetensors", "b.ckpt", "z.safetensors"]
    assert await client.get_json("/models/loras") == ["l.safetensors"]
    assert await client.get_json("/models/text_encoders") == ["c.safetensors"]
    assert await client.get_json("/models/diffusion_models") == ["u.safetensors"]
    info = await client.get_json("/object_info/UpscaleModelLoader")
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == ["x4.pth"]
    assert "Adding extra search path checkpoints" in emu.log_text()


def test_minimal_yaml_parser_matches_pyyaml() -> None:
    yaml = pytest.importorskip("yaml")
    from comfy_emulator.folders import parse_simple_yaml

    text = (
        "comfyui:\n"
        "    base_path: /data/comfy   # trailing comment\n"
        "    is_default: true\n"
        "    checkpoints: |\n"
        "        models/checkpoints\n"
        "        models/more\n"
        "    vae: 'models/vae'\n"
        "\n"
        "a1111:\n"
        '    base_path: "/opt/sd"\n'
        "    loras: |\n"
        "         models/Lora\n"
        "         models/LyCORIS\n"
        "    upscale_models: |\n"
        "                  models/ESRGAN\n"
        "                  models/RealESRGAN\n"
    )
    assert parse_simple_yaml(text) == yaml.safe_load(text)


def test_comfyui_flags_are_accepted_and_logs_look_like_comfyui(
    make_emulator: Callable[..., EmulatorProcess],
) -> None:
    emu = make_emulator(
        extra_args=["--cpu", "--fast", "--disable-smart-memory", "--preview-method", "auto", "--cache-ram"]
    )
    log = emu.log_text()
    assert "Starting server" in log
    assert f"To see the GUI go to: http://127.0.0.1:{emu.port}" in log
    assert "ComfyUI version: 0.8.0" in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--some-future-flag", "value"], "error: unrecognized arguments: --some-future-flag value"),
        (["--cpu", "--highvram"], "error: argument --highvram: not allowed with argument --cpu"),
        (["--verbose", "DETAIL"], "error: argument --verbose: invalid choice: 'DETAIL'"),
        (["--user-directory", "/no/such/dir"], "The path '/no/such/dir' does not exist."),
    ],
)
def test_flags_comfyui_refuses_end_the_process_like_argparse(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """ComfyUI's parser.parse_args(): anything 0.8.0's cli_args.py does not accept exits 2 on stderr."""
    proc = subprocess.run(
        [sys.executable, str(MAIN), "--base-directory", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: main.py ")
    assert message in proc.stderr


async def test_temp_directory_is_wiped_at_boot(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """--temp-directory T puts temp files in T/temp (01 argv) and ComfyUI empties it at start."""
    root = tmp_path / "emu"
    (root / "temp").mkdir(parents=True)
    (root / "temp" / "stale.png").write_bytes(b"x")
    emu = make_emulator(root=root)
    assert not (root / "temp" / "stale.png").exists()
    client = Client(emu, session)
    _, history = await client.run(with_color(workflow("preview_image")))
    for image in history["outputs"]["2"]["images"]:
        assert (root / "temp" / image["filename"]).is_file()
    await client.close()


def test_default_directories_follow_base_directory(tmp_path: Path) -> None:
    base = tmp_path / "base"
    port = free_port_for_tests()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(MAIN),
            "--port",
            str(port),
            "--base-directory",
            str(base),
            "--quick-test-for-ci",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    for name in ("input", "output", "temp", "user"):
        assert (base / name).is_dir()


def test_port_in_use_fails_like_comfyui(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, str(MAIN), "--port", str(port), "--base-directory", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    assert "Traceback (most recent call last):" in proc.stderr
    assert "address already in use" in proc.stderr


async def test_disable_api_nodes(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(extra_args=["--disable-api-nodes"])
    info = await Client(emu, session).get_json("/object_info")
    assert len(info) < 568
    assert not [name for name, node in info.items() if node.get("api_node")]
    assert "SaveImage" in info


async def test_server_preview_method_and_per_prompt_override(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(
        extra_args=["--preview-method", "auto"],
        time_scale=0.01,
        models={"checkpoints": ["random_sd15_arch.safetensors"]},
    )
    client = Client(emu, session)
    rec, _ = await client.run(workflow("ksampler_random_sd15"))
    assert len(rec.of_type("binary:PREVIEW_IMAGE")) == 4
    prompt = workflow("ksampler_random_sd15")
    prompt["5"]["inputs"]["seed"] = 7
    rec, _ = await client.run(prompt, extra_data={"preview_method": "none"})
    assert not rec.of_type("binary:PREVIEW_IMAGE")
    await client.close()


async def test_cache_modes(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    none = Client(make_emulator(extra_args=["--cache-none"]), session)
    prompt = workflow("tiny_image")
    await none.run(prompt)
    rec, _ = await none.run(prompt)
    assert rec.of_type("execution_cached")[0].data["nodes"] == []

    lru = Client(make_emulator(extra_args=["--cache-lru", "10"]), session)
    a, b = with_color(workflow("tiny_image")), with_color(workflow("tiny_image"))
    await lru.run(a)
    await lru.run(b)
    rec, _ = await lru.run(a)  # classic mode would have forgotten a's nodes while running b
    assert rec.of_type("execution_cached")[0].data["nodes"] == ["1", "2"]

    classic = Client(make_emulator(), session)
    await classic.run(a)
    await classic.run(b)
    rec, _ = await classic.run(a)
    assert rec.of_type("execution_cached")[0].data["nodes"] == []
    for c in (none, lru, classic):
        await c.close()


async def test_png_metadata(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator()
    client = Client(emu, session)
    prompt = with_color(workflow("tiny_image"))
    _, history = await client.run(prompt, extra_data={"extra_pnginfo": {"workflow": {"note": "x"}}})
    with Image.open(emu.output_dir / history["outputs"]["2"]["images"][0]["filename"]) as img:
        assert "prompt" in img.info and '"note": "x"' in img.info["workflow"]
    bare = make_emulator(extra_args=["--disable-metadata"])
    client2 = Client(bare, session)
    _, history = await client2.run(with_color(workflow("tiny_image")))
    with Image.open(bare.output_dir / history["outputs"]["2"]["images"][0]["filename"]) as img:
        assert "prompt" not in img.info
    await client.close()
    await client2.close()


async def test_sigint_stops_cleanly(make_emulator: Callable[..., EmulatorProcess]) -> None:
    emu = make_emulator()
    assert emu.process is not None
    emu.process.send_signal(2)
    assert await asyncio.to_thread(emu.wait_exit, 10) == 0
    assert "Stopped server" in emu.log_text()
