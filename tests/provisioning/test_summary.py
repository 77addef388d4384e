"""The start-up summary, built from /system_stats and ComfyUI's boot log, with no torch import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from comfy_serverless.provisioning import (
    ModelSearchPaths,
    build_startup_summary,
    count_model_files,
    diagnose_volume,
    parse_custom_node_log,
)

from .conftest import REPO, needs_reference, transcript_response

GPU_STATS: dict[str, Any] = {
    "system": {
        "comfyui_version": "0.8.0",
        "pytorch_version": "2.9.1+cu128",
        "python_version": "3.12.3 (main, ...)",
    },
    "devices": [
        {
            "name": "cuda:0 NVIDIA GeForce RTX 5090 : cudaMallocAsync",
            "type": "cuda",
            "index": 0,
            "vram_total": 33_668_988_928,
            "vram_free": 33_120_000_000,
        }
    ],
}

BOOT_LOG = """\
[2026-11-20 10:00:01.123] Prestartup times for custom nodes:
[2026-11-20 10:00:01.124]    0.0 seconds: /comfyui/custom_nodes/ComfyUI-Manager
[2026-11-20 10:00:01.125]
[2026-11-20 10:00:04.000] Cannot import /comfyui/custom_nodes/ComfyUI-Broken module for custom nodes: \
No module named 'cv2'
[2026-11-20 10:00:04.100] Import times for custom nodes:
[2026-11-20 10:00:04.101]    0.0 seconds: /comfyui/custom_nodes/websocket_image_save.py
[2026-11-20 10:00:04.102]    0.1 seconds (IMPORT FAILED): /comfyui/custom_nodes/ComfyUI-Broken
[2026-11-20 10:00:04.103]    1.9 seconds: /comfyui/custom_nodes/ComfyUI-KJNodes
[2026-11-20 10:00:04.104]
[2026-11-20 10:00:04.200] Starting server
"""


def test_boot_log_parsing() -> None:
    report = parse_custom_node_log(BOOT_LOG.splitlines())
    assert report.seen
    assert [(n.name, n.seconds) for n in report.loaded] == [
        ("websocket_image_save.py", 0.0),
        ("ComfyUI-KJNodes", 1.9),
    ]
    assert [(n.name, n.error) for n in report.failed] == [("ComfyUI-Broken", "No module named 'cv2'")]
    assert parse_custom_node_log(["Starting server"]).seen is False


def test_prestartup_failure_is_a_failure() -> None:
    report = parse_custom_node_log(
        [
            "Prestartup times for custom nodes:",
            "   0.2 seconds (PRESTARTUP FAILED): /comfyui/custom_nodes/X",
            "",
        ]
    )
    assert [n.name for n in report.failed] == ["X"]


def test_summary_block_has_gpu_version_nodes_folders_and_volume(tmp_path: Path) -> None:
    (tmp_path / "comfyui/models/checkpoints").mkdir(parents=True)
    (tmp_path / "comfyui/models/checkpoints/sd15.safetensors").write_bytes(b"x")
    (tmp_path / "vol/loras").mkdir(parents=True)
    (tmp_path / "vol/loras/a.safetensors").write_bytes(b"x")
    paths = ModelSearchPaths(tmp_path / "comfyui/models", tmp_path / "vol")
    text = build_startup_summary(
        system_stats=GPU_STATS,
        custom_nodes=parse_custom_node_log(BOOT_LOG.splitlines()),
        model_folders=count_model_files(paths),
        volume=diagnose_volume(tmp_path / "vol"),
        boot_seconds=12.34,
    )
    lines = text.splitlines()
    assert lines[0].startswith("===== comfy-serverless start-up") and set(lines[-1]) == {"="}
    assert "ComfyUI 0.8.0, ready after 12.3 s; PyTorch 2.9.1+cu128; Python 3.12.3" in text
    assert "GPU: cuda:0 NVIDIA GeForce RTX 5090 : cudaMallocAsync (cuda), VRAM 31.4 GiB total" in text
    assert "Custom nodes loaded (2): websocket_image_save.py, ComfyUI-KJNodes" in text
    assert "Custom nodes FAILED (1):" in text and "ComfyUI-Broken: No module named 'cv2'" in text
    assert f"checkpoints                1  {tmp_path}/comfyui/models/checkpoints" in text
    assert f"loras                      1  {tmp_path}/vol/loras" in text
    assert "bare <folder> at the volume root - works, but" in text
    assert "fix: mkdir -p" in text


@needs_reference
def test_summary_from_the_recorded_cpu_system_stats(meta_transcript: dict[str, Any]) -> None:
    stats = transcript_response(meta_transcript, "/system_stats")
    text = build_startup_summary(system_stats=stats, custom_nodes=None, model_folders=[])
    assert "ComfyUI 0.8.0; PyTorch 2.14.1+cu130; Python 3.11.7" in text
    assert "Device: cpu (cpu)" in text and "runs on the CPU" in text
    assert "Custom nodes: none reported" in text
    assert "no model files found" in text


def test_unknown_system_stats() -> None:
    text = build_startup_summary(system_stats=None, custom_nodes=None, model_folders=[])
    assert "GPU: unknown (ComfyUI /system_stats not available)" in text


def test_provisioning_never_imports_torch(tmp_path: Path) -> None:
    """A poisoned `torch` on sys.path proves no provisioning path (CLI included) imports it."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('torch imported by the worker')\n")
    script = textwrap.dedent(
        """
        import sys
        import comfy_serverless.provisioning as p
        from comfy_serverless.provisioning import cli, nodes, download, volume, summary, workflow_models
        from pathlib import Path
        r = p.diagnose_volume(Path(sys.argv[1]))
        p.build_startup_summary(system_stats=None, custom_nodes=None, model_folders=[], volume=r)
        cli.main(["check-volume", "--volume", sys.argv[1]])
        assert "torch" not in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={"PYTHONPATH": f"{tmp_path}:{REPO / 'src'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
