"""The node catalogue: ``GET /object_info`` of real ComfyUI 0.8.0 (transcripts/object_info.json, 568 core
nodes) with the choice lists that depend on the machine (model files, input files) replaced by what this
emulator finds on disk.

Choice lists are either ``[[choices...], {...}]`` (old-style nodes) or ``["COMBO", {"options": [...]}]``
(v3 nodes); both forms occur in object_info.json and both are patched in place.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any

from .folders import FolderPaths

# The recording lives beside the repository (../shared/comfyui-reference); COMFY_REFERENCE_DIR overrides.
REFERENCE_DIR = os.environ.get("COMFY_REFERENCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "comfyui-reference"
)
DATA_FILE = os.path.join(REFERENCE_DIR, "transcripts", "object_info.json")

# (class, input) -> model folder.  Derived from the loaders in object_info.json and the folder names of
# GET /models (01_meta_endpoints).
MODEL_INPUTS: dict[str, dict[str, str]] = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "CheckpointLoader": {"ckpt_name": "checkpoints", "config_name": "configs"},
    "unCLIPCheckpointLoader": {"ckpt_name": "checkpoints"},
    "ImageOnlyCheckpointLoader": {"ckpt_name": "checkpoints"},
    "CreateHookModelAsLora": {"ckpt_name": "checkpoints"},
    "CreateHookModelAsLoraModelOnly": {"ckpt_name": "checkpoints"},
    "LTXVAudioVAELoader": {"ckpt_name": "checkpoints"},
    "LTXAVTextEncoderLoader": {"text_encoder": "text_encoders", "ckpt_name": "checkpoints"},
    "LoraLoader": {"lora_name": "loras"},
    "LoraLoaderModelOnly": {"lora_name": "loras"},
    "CreateHookLora": {"lora_name": "loras"},
    "CreateHookLoraModelOnly": {"lora_name": "loras"},
    "CLIPLoader": {"clip_name": "text_encoders"},
    "DualCLIPLoader": {"clip_name1": "text_encoders", "clip_name2": "text_encoders"},
    "TripleCLIPLoader": {f"clip_name{i}": "text_encoders" for i in (1, 2, 3)},
    "QuadrupleCLIPLoader": {f"clip_name{i}": "text_encoders" for i in (1, 2, 3, 4)},
    "UNETLoader": {"unet_name": "diffusion_models"},
    "ControlNetLoader": {"control_net_name": "controlnet"},
    "DiffControlNetLoader": {"control_net_name": "controlnet"},
    "StyleModelLoader": {"style_model_name": "style_models"},
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
    "GLIGENLoader": {"gligen_name": "gligen"},
    "DiffusersLoader": {"model_path": "diffusers"},
    "HypernetworkLoader": {"hypernetwork_name": "hypernetworks"},
    "UpscaleModelLoader": {"model_name": "upscale_models"},
    "LatentUpscaleModelLoader": {"model_name": "latent_upscale_models"},
    "PhotoMakerLoader": {"photomaker_model_name": "photomaker"},
    "ModelPatchLoader": {"name": "model_patches"},
    "AudioEncoderLoader": {"audio_encoder_name": "audio_encoders"},
}

# Inputs whose choices are files of the input folder (filtered by content type), and the custom
# validation real ComfyUI runs on them instead of the list check (12_validation_errors:
# ``custom_validation_failed`` / ``image - Invalid image file: no_such_file.png``).
INPUT_FILE_INPUTS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "LoadImage": {"image": (("image",), "Invalid image file: {}")},
    "LoadImageMask": {"image": (("image",), "Invalid image file: {}")},
    "LoadAudio": {"audio": (("audio", "video"), "Invalid audio file: {}")},
    "LoadVideo": {"file": (("video",), "Invalid video file: {}")},
}
CUSTOM_VALIDATED: dict[str, dict[str, str]] = {
    **{cls: {name: msg for name, (_, msg) in spec.items()} for cls, spec in INPUT_FILE_INPUTS.items()},
    "LoadImageOutput": {"image": "Invalid image file: {}"},
    "LoadLatent": {"latent": "Invalid latent file: {}"},
}

TAESD_NAMES = ("taesd", "taesdxl", "taesd3", "taef1")


def choices_of(spec: list[Any]) -> list[Any] | None:
    if not spec:
        return None
    head = spec[0]
    if isinstance(head, list):
        return head
    if head == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return options if isinstance(options, list) else []
    return None


def set_choices(spec: list[Any], values: list[str]) -> None:
    if isinstance(spec[0], list):
        spec[0] = list(values)
    elif spec[0] == "COMBO":
        spec[1]["options"] = list(values)


class Catalog:
    def __init__(self, folders: FolderPaths, disable_api_nodes: bool = False) -> None:
        self.folders = folders
        with open(DATA_FILE, encoding="utf-8") as fh:
            raw: dict[str, dict[str, Any]] = json.load(fh)
        if disable_api_nodes:
            # boot_time_disable_api_nodes.json: --disable-api-nodes drops the api nodes from /object_info.
            raw = {k: v for k, v in raw.items() if not v.get("api_node")}
        self._raw = raw
        self._dynamic: dict[str, dict[str, Callable[[], list[str]]]] = {}
        for cls, inputs in MODEL_INPUTS.items():
            for name, folder in inputs.items():
                self._dynamic.setdefault(cls, {})[name] = self._folder_lister(folder)
        self._dynamic.setdefault("VAELoader", {})["vae_name"] = self._vae_list
        for file_cls, file_inputs in INPUT_FILE_INPUTS.items():
            for file_input, (types, _) in file_inputs.items():
                self._dynamic.setdefault(file_cls, {})[file_input] = self._input_lister(types)
        self._dynamic.setdefault("LoadLatent", {})["latent"] = self._latent_list
        self._dynamic.setdefault("Load3D", {})["model_file"] = self._load3d_list
        self._dynamic = {k: v for k, v in self._dynamic.items() if k in raw}

    # ------------------------------------------------------------------ listers
    def _folder_lister(self, folder: str) -> Callable[[], list[str]]:
        return lambda: self.folders.get_filename_list(folder)

    def _input_lister(self, types: tuple[str, ...]) -> Callable[[], list[str]]:
        return lambda: self.folders.input_files(types)

    def _vae_list(self) -> list[str]:
        names = self.folders.get_filename_list("vae")
        approx = self.folders.get_filename_list("vae_approx")
        for taesd in TAESD_NAMES:
            has_enc = any(a.startswith(f"{taesd}_encoder.") for a in approx)
            has_dec = any(a.startswith(f"{taesd}_decoder.") for a in approx)
            if has_enc and has_dec:
                names.append(taesd)
        names.append("pixel_space")
        return names

    def _latent_list(self) -> list[str]:
        return [f for f in self.folders.input_files() if f.endswith(".latent")]

    def _load3d_list(self) -> list[str]:
        exts = (".gltf", ".glb", ".obj", ".fbx", ".stl")
        return ["3d/" + f for f in self.folders.input_files(subdir="3d") if f.lower().endswith(exts)]

    # ------------------------------------------------------------------ queries
    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and class_type in self._raw

    def class_names(self) -> list[str]:
        return list(self._raw)

    def raw(self, class_type: str) -> dict[str, Any]:
        """The unpatched definition (static parts: outputs, flags)."""
        return self._raw[class_type]

    def node_def(self, class_type: str) -> dict[str, Any]:
        """The definition with machine-dependent choice lists filled in."""
        base = self._raw[class_type]
        dynamic = self._dynamic.get(class_type)
        if not dynamic:
            return base
        out = copy.deepcopy(base)
        for category in ("required", "optional"):
            inputs = out["input"].get(category, {})
            for name, lister in dynamic.items():
                if name in inputs:
                    set_choices(inputs[name], lister())
        return out

    def all_defs(self) -> dict[str, Any]:
        return {name: self.node_def(name) for name in self._raw}

    def is_output_node(self, class_type: str) -> bool:
        return bool(self._raw[class_type].get("output_node"))

    def is_v3(self, class_type: str) -> bool:
        return "api_node" in self._raw[class_type]

    def return_types(self, class_type: str) -> tuple[Any, ...]:
        return tuple(self._raw[class_type].get("output", []))

    def input_spec(self, node_def: dict[str, Any], name: str) -> tuple[Any, str | None, dict[str, Any]]:
        """(type, category, extra_info) of an input; category None if the class has no such input."""
        for category in ("required", "optional"):
            inputs = node_def["input"].get(category, {})
            if name in inputs:
                spec = inputs[name]
                extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                return spec[0], category, extra
        return None, None, {}

    def valid_input_names(self, node_def: dict[str, Any]) -> list[str]:
        order = node_def.get("input_order", {})
        names: list[str] = []
        for category in ("required", "optional"):
            declared = list(node_def["input"].get(category, {}))
            ordered = [n for n in order.get(category, declared) if n in declared]
            names.extend(ordered + [n for n in declared if n not in ordered])
        return names

    def hidden_inputs(self, node_def: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, spec in node_def["input"].get("hidden", {}).items():
            out[name] = spec[0] if isinstance(spec, list) else str(spec)
        return out
