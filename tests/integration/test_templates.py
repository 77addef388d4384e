"""Shipped templates end to end through the worker: every one on the emulator (with placeholder model
files), and SDXL on the real ComfyUI with a random-weight SD1.5-shaped checkpoint passed through the
template's own checkpoint parameters."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from comfy_serverless.workflows.templates import TemplateCatalog
from tests.support.reference import REFERENCE

from .helpers import assert_completed, assert_failed, decode_image, png_b64

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
CATALOG = TemplateCatalog.load([WORKFLOWS])
# A file whose bytes the emulator's LoadVideo does not decode; real ComfyUI never sees it.
VIDEO = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()
REQUIRED = {"string": "a red fox in the snow", "image": png_b64(96, 64), "video": VIDEO}


def _models_config(root: Path, files: dict[str, list[str]]) -> Path:
    for folder, names in files.items():
        for name in names:
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_bytes(b"placeholder weights")
    config = root / "extra_model_paths.yaml"
    config.write_text(yaml.safe_dump({"templates": {"base_path": str(root), **{f: f for f in files}}}))
    return config


def _every_template_model() -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for template in CATALOG.templates.values():
        for model in template.manifest.models:
            files.setdefault(model.folder, []).append(model.name)
    return files


def _required_values(name: str) -> dict[str, Any]:
    manifest = CATALOG.templates[name].manifest
    return {p: REQUIRED[spec.type] for p, spec in manifest.parameters.items() if spec.required}


@pytest.fixture
def emulator_templates(backend, make_worker, faults, tmp_path):
    if backend.is_real:
        pytest.skip(
            "the shipped templates need their real models; the real-ComfyUI run is the SDXL test below"
        )
    sent = tmp_path / "sent.jsonl"
    faults.set(record_prompts_to=str(sent), time_scale=0.001)
    config = _models_config(tmp_path / "models", _every_template_model())
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_extra_model_paths=config)
    return worker, sent


def _last_prompt(sent: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(sent.read_text().splitlines()[-1])
    return body["prompt"]


@pytest.mark.parametrize("name", sorted(CATALOG.templates))
def test_every_shipped_template_runs_with_its_required_parameters(emulator_templates, name: str) -> None:
    worker, sent = emulator_templates
    output = assert_completed(worker.runsync({"template": name, **_required_values(name)}, timeout=300))
    kinds = {item["type"] for item in output["outputs"]}
    assert kinds == set(CATALOG.templates[name].manifest.outputs)
    prompt = _last_prompt(sent)
    assert output["seeds"], "a template's seed parameter defaults to a fresh random seed, reported back"
    for node_id, seed in output["seeds"].items():
        inputs = prompt[node_id]["inputs"]
        assert seed in (inputs.get("seed"), inputs.get("noise_seed"))


def test_ltx2_t2v_parameters_reach_the_nodes_with_derived_frames_and_sizes(emulator_templates) -> None:
    worker, sent = emulator_templates
    job = {
        "template": "ltx2_t2v",
        "prompt": "a lighthouse at night",
        "duration": 3,
        "fps": 30,
        "width": 1000,
        "height": 500,
        "seed": 1234,
        "steps": 8,
    }
    output = assert_completed(worker.runsync(job, timeout=300))
    prompt = _last_prompt(sent)
    assert prompt["92:3"]["inputs"]["text"] == "a lighthouse at night"
    assert prompt["92:62"]["inputs"]["value"] == 89  # 3 s x 30 fps = 90 -> 8k+1
    assert prompt["92:99"]["inputs"]["value"] == 30 and prompt["92:102"]["inputs"]["value"] == 30
    assert (prompt["92:89"]["inputs"]["width"], prompt["92:89"]["inputs"]["height"]) == (1024, 512)
    assert prompt["92:9"]["inputs"]["steps"] == 8
    assert prompt["92:11"]["inputs"]["noise_seed"] == 1234
    assert output["seeds"]["92:11"] == 1234


def test_a_template_image_is_stored_in_the_jobs_input_folder_and_named_on_the_loader(
    emulator_templates,
) -> None:
    worker, sent = emulator_templates
    job = {
        "template": "wan22_i2v",
        "prompt": "the cat blinks",
        "image": "data:image/png;base64," + png_b64(16, 16),
    }
    assert_completed(worker.runsync(job, timeout=300))
    loader = _last_prompt(sent)["97"]["inputs"]["image"]
    assert loader.startswith("job-") and loader.endswith("/image.png")


def test_template_errors_name_the_parameter_and_the_next_job_succeeds(emulator_templates) -> None:
    worker, _ = emulator_templates
    assert_failed(
        worker.runsync({"template": "flux1_schnell_t2i", "prompt": "x", "steps": 0}),
        "Invalid parameters for template flux1_schnell_t2i: steps: Input should be greater than or equal to 1",
    )
    assert_completed(
        worker.runsync({"template": "flux1_schnell_t2i", "prompt": "x", "steps": 1}, timeout=300)
    )


def test_sdxl_template_makes_an_image_on_the_real_comfyui(backend, make_worker, tmp_path) -> None:
    if not backend.is_real:
        pytest.skip("runs the real sampler; the emulator run is above")
    assert backend.comfyui_python is not None
    checkpoint = tmp_path / "models" / "checkpoints" / "tiny_sd15.safetensors"
    checkpoint.parent.mkdir(parents=True)
    subprocess.run(
        [backend.comfyui_python, str(REFERENCE / "tools" / "make_tiny_sd15_checkpoint.py"), str(checkpoint)],
        check=True,
        capture_output=True,
        timeout=600,
        env={"COMFYUI_DIR": str(backend.comfyui_dir), "PATH": "/usr/bin:/bin"},
    )
    config = _models_config(tmp_path / "models", {"checkpoints": ["tiny_sd15.safetensors"]})
    worker = make_worker(comfyui_extra_model_paths=config)
    job = {
        "template": "sdxl_t2i",
        "prompt": "a lighthouse",
        "checkpoint": "tiny_sd15.safetensors",
        "refiner_checkpoint": "tiny_sd15.safetensors",
        "width": 96,
        "height": 64,
        "steps": 2,
        "refiner_share": 0.5,
        "seed": 7,
    }
    output = assert_completed(worker.runsync(job, timeout=600))
    (image,) = output["outputs"]
    assert image["type"] == "image" and image["node_id"] == "19"
    assert decode_image(image).size == (96, 64)
    assert output["seeds"] == {"10": 7, "11": 0}


def test_a_broken_manifest_is_logged_with_its_file_and_the_other_templates_still_run(
    backend, make_worker, faults, tmp_path
) -> None:
    if backend.is_real:
        pytest.skip("worker start-up behaviour, independent of the ComfyUI backend")
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "portrait.yaml").write_text(
        "title: Portrait\nworkflow: portrait.json\nparameters:\n  size: {type: huge}\n"
    )
    (mine / "portrait.json").write_text("{}")
    config = _models_config(tmp_path / "models", {"checkpoints": ["flux1-schnell-fp8.safetensors"]})
    faults.set(time_scale=0.001)
    worker = make_worker(
        templates_dir=mine, comfyui_extra_model_paths=config, comfy_emulator_faults_file=faults.path
    )
    assert_failed(
        worker.runsync({"template": "portrait"}),
        "there is no template 'portrait' (available: flux1_schnell_t2i",
    )
    assert_completed(
        worker.runsync({"template": "flux1_schnell_t2i", "prompt": "a fox", "steps": 1}, timeout=300)
    )
    log = worker.log_text()
    assert (
        "Template portrait is not available" in log
        and f"{mine / 'portrait.yaml'}: parameters.size.type" in log
    )
