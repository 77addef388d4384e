"""The folder table and extra_model_paths.yaml against what ComfyUI 0.8.0 reports, plus newer folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from comfy_serverless.provisioning import (
    COMFYUI_FOLDERS,
    LOADER_INPUTS,
    MODEL_FOLDERS,
    NEWER_COMFYUI_FOLDERS,
    ModelSearchPaths,
    folder_for_input,
    render_extra_model_paths,
)

from .conftest import REPO, needs_reference, transcript_response

SHIPPED_YAML = REPO / "docker" / "extra_model_paths.yaml"

# Loader-category inputs that pick a file but are deliberately not in LOADER_INPUTS, with the reason.
NOT_MAPPED: dict[tuple[str, str], str] = {
    ("LTXVAudioVAELoader", "ckpt_name"): "LTX-2 audio VAE: folder not confirmed from the reference",
    ("LTXAVTextEncoderLoader", "ckpt_name"): "LTX-2 text encoder companion checkpoint: folder not confirmed",
    ("LTXAVTextEncoderLoader", "text_encoder"): "LTX-2 text encoder: folder not confirmed",
}


def load_like_comfyui(text: str) -> dict[str, list[str]]:
    """What ComfyUI's utils/extra_config.load_extra_path_config adds: folder -> full paths, in order."""
    added: dict[str, list[str]] = {}
    for conf in yaml.safe_load(text).values():
        conf = dict(conf)
        base = conf.pop("base_path", None)
        conf.pop("is_default", None)
        for folder, value in conf.items():
            for line in str(value).split("\n"):
                if line:
                    added.setdefault(folder, []).append(os.path.join(base, line) if base else line)
    return added


@needs_reference
def test_folder_table_is_comfyui_080_models_endpoint(meta_transcript: dict[str, Any]) -> None:
    assert list(COMFYUI_FOLDERS) == transcript_response(meta_transcript, "/models")
    assert transcript_response(meta_transcript, "/system_stats")["system"]["comfyui_version"] == "0.8.0"


@needs_reference
def test_every_mapped_loader_input_exists_as_a_choice_in_object_info(object_info: dict[str, Any]) -> None:
    for (class_type, input_name), folder in LOADER_INPUTS.items():
        assert class_type in object_info, class_type
        inputs = object_info[class_type]["input"]
        spec = {**inputs.get("required", {}), **inputs.get("optional", {})}.get(input_name)
        assert spec is not None, f"{class_type}.{input_name}"
        assert isinstance(spec[0], list) or spec[0] == "COMBO", (
            f"{class_type}.{input_name} is not a file choice"
        )
        assert folder in MODEL_FOLDERS


@needs_reference
def test_no_loader_file_input_is_forgotten(object_info: dict[str, Any]) -> None:
    """Every file choice of a node in a loaders category is mapped to a folder or listed with a reason."""
    forgotten = []
    for class_type, info in object_info.items():
        if "loaders" not in str(info.get("category", "")):
            continue
        for input_name, spec in info["input"].get("required", {}).items():
            is_choice = isinstance(spec[0], list) or spec[0] == "COMBO"
            picks_file = input_name.endswith(("_name", "_path")) or input_name in {"name", "text_encoder"}
            if is_choice and picks_file and input_name not in {"type", "weight_dtype"}:
                key = (class_type, input_name)
                if key not in LOADER_INPUTS and key not in NOT_MAPPED:
                    forgotten.append(key)
    assert forgotten == []
    for class_type, input_name in NOT_MAPPED:  # the allow-list names real inputs, not stale ones
        assert input_name in object_info[class_type]["input"]["required"]


def test_shipped_yaml_is_the_rendered_one() -> None:
    assert SHIPPED_YAML.read_text() == render_extra_model_paths("/runpod-volume"), (
        "regenerate: python -m comfy_serverless.provisioning model-paths --volume /runpod-volume "
        "--output docker/extra_model_paths.yaml"
    )


@needs_reference
def test_shipped_yaml_covers_every_model_folder_in_both_layouts(meta_transcript: dict[str, Any]) -> None:
    known = set(transcript_response(meta_transcript, "/models")) - {"custom_nodes"}
    known |= set(NEWER_COMFYUI_FOLDERS)
    added = load_like_comfyui(SHIPPED_YAML.read_text())
    assert set(added) == known
    for required in ("diffusion_models", "text_encoders", "latent_upscale_models", "audio_encoders"):
        assert required in added
    for folder in known:
        paths = [p.rstrip("/") for p in added[folder]]
        assert f"/runpod-volume/models/{folder}" in paths
        assert f"/runpod-volume/{folder}" in paths
    assert "/runpod-volume/models/unet" in [p.rstrip("/") for p in added["diffusion_models"]]
    assert "/runpod-volume/models/clip" in [p.rstrip("/") for p in added["text_encoders"]]
    assert "custom_nodes" not in added  # code on a volume would lack its dependencies


def test_rendered_yaml_for_another_volume_root() -> None:
    added = load_like_comfyui(render_extra_model_paths("/mnt/vol/"))
    assert [p.rstrip("/") for p in added["loras"]] == ["/mnt/vol/models/loras", "/mnt/vol/loras"]


def test_search_paths_match_the_yaml_order(tmp_path: Path) -> None:
    paths = ModelSearchPaths(tmp_path / "comfyui" / "models", Path("/runpod-volume"))
    dirs = [str(d) for d in paths.dirs_for("diffusion_models")]
    assert dirs == [
        str(tmp_path / "comfyui/models/diffusion_models"),
        str(tmp_path / "comfyui/models/unet"),
        "/runpod-volume/models/diffusion_models",
        "/runpod-volume/models/unet",
        "/runpod-volume/diffusion_models",
        "/runpod-volume/unet",
    ]
    added = load_like_comfyui(render_extra_model_paths("/runpod-volume"))
    assert [p.rstrip("/") for p in added["diffusion_models"]] == dirs[2:]


@pytest.mark.parametrize(
    ("class_type", "input_name", "folder"),
    [
        ("CheckpointLoaderSimple", "ckpt_name", "checkpoints"),
        ("UNETLoader", "unet_name", "diffusion_models"),
        ("CLIPVisionLoader", "clip_name", "clip_vision"),
        ("DualCLIPLoader", "clip_name2", "text_encoders"),
        ("SomeCustomLoader", "lora_name", "loras"),
        ("SomeCustomLoader", "clip_name", None),  # ambiguous without a known node
        (None, None, None),
    ],
)
def test_folder_for_input(class_type: str | None, input_name: str | None, folder: str | None) -> None:
    assert folder_for_input(class_type, input_name) == folder


def test_worker_reads_extra_model_paths_as_comfyui_does(tmp_path: Path) -> None:
    from comfy_serverless.provisioning import ModelSearchPaths, read_extra_model_paths

    yaml_file = tmp_path / "extra.yaml"
    yaml_file.write_text(SHIPPED_YAML.read_text())
    read = read_extra_model_paths(yaml_file)
    expected = {
        folder: [os.path.normpath(d) for d in dirs]
        for folder, dirs in load_like_comfyui(SHIPPED_YAML.read_text()).items()
    }
    assert {folder: [str(p) for p in dirs] for folder, dirs in read.items()} == expected
    paths = ModelSearchPaths(comfyui_models_dir=None, volume_root=None, extra=read)
    assert Path(expected["loras"][0]) in paths.dirs_for("loras")
