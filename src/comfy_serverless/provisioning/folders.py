"""The model folders ComfyUI knows, and where the worker looks for each of them.

One table drives everything that names a model folder: the ``extra_model_paths.yaml`` shipped in the
image (rendered by :func:`render_extra_model_paths`), the network-volume diagnosis, the start-up file
counts and the "model not in list" explanations. The names come from ComfyUI 0.8.0's ``GET /models``
(see ``shared/comfyui-reference/transcripts/01_meta_endpoints.json``), plus the folders newer ComfyUI
added (folder_paths.py of about 0.38 on); the tests check the table against that transcript and against
the loader nodes in ``object_info.json``. Listing a folder an older ComfyUI does not have is harmless:
``extra_model_paths.yaml`` then only adds a search path nobody asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: Every folder ``GET /models`` lists in ComfyUI 0.8.0, in that order.
COMFYUI_FOLDERS: tuple[str, ...] = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "latent_upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
)

#: Folders newer ComfyUI added after 0.8.0 (folder_paths.py@1df2885ebd of Comfy-Org/ComfyUI, ~0.38).
NEWER_COMFYUI_FOLDERS: tuple[str, ...] = (
    "datasets",
    "background_removal",
    "frame_interpolation",
    "geometry_estimation",
    "optical_flow",
    "detection",
    "fonts",
)

#: ``custom_nodes`` is a code folder, not a model folder: nodes on a volume would miss their Python
#: dependencies, so the volume is never searched for them.
MODEL_FOLDERS: tuple[str, ...] = (
    *(f for f in COMFYUI_FOLDERS if f != "custom_nodes"),
    *NEWER_COMFYUI_FOLDERS,
)

#: Older sub-folder names ComfyUI still reads for a folder (its defaults under ``ComfyUI/models``).
#: Volumes made for older workers use them, so the worker reads them on the volume too.
LEGACY_SUBDIRS: dict[str, tuple[str, ...]] = {
    "text_encoders": ("clip",),
    "diffusion_models": ("unet",),
    "controlnet": ("t2i_adapter",),
}

#: File extensions ComfyUI lists per folder (``folder_paths.supported_pt_extensions`` and friends).
PT_EXTENSIONS: frozenset[str] = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
)
FOLDER_EXTENSIONS: dict[str, frozenset[str] | None] = {
    "configs": frozenset({".yaml"}),
    "diffusers": None,  # ComfyUI lists sub-folders (one diffusers model per folder), not files
    "classifiers": frozenset(),  # any file
    "datasets": frozenset(),  # any file
    "fonts": frozenset({".ttf", ".otf"}),
}

#: Loader node inputs that pick a file from a model folder: (class_type, input_name) -> folder.
LOADER_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "config_name"): "configs",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("DiffusersLoader", "model_path"): "diffusers",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
}

#: Input names that identify their folder on their own, whatever the node (custom loaders reuse them).
_UNAMBIGUOUS_INPUTS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "vae_name": "vae",
    "lora_name": "loras",
    "unet_name": "diffusion_models",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "photomaker_model_name": "photomaker",
    "audio_encoder_name": "audio_encoders",
    "config_name": "configs",
}

#: Where ComfyUI 0.8.0 looks by default, relative to its checkout.
COMFYUI_MODELS_SUBDIR = "models"
#: The right place for models on a RunPod network volume: ``<volume>/models/<folder>``.
VOLUME_MODELS_SUBDIR = "models"
DEFAULT_VOLUME_ROOT = Path("/runpod-volume")


def folder_for_input(class_type: str | None, input_name: str | None) -> str | None:
    """The model folder a loader input reads, or ``None`` when it cannot be told."""
    if class_type and input_name and (class_type, input_name) in LOADER_INPUTS:
        return LOADER_INPUTS[(class_type, input_name)]
    if input_name:
        return _UNAMBIGUOUS_INPUTS.get(input_name)
    return None


def subdirs_for(folder: str) -> tuple[str, ...]:
    """Sub-folder names read for ``folder``: its own name first, then its legacy names."""
    return (folder, *LEGACY_SUBDIRS.get(folder, ()))


def canonical_folder(name: str) -> str | None:
    """Map a sub-folder name (``unet``, ``clip``, ``loras``...) to the folder ComfyUI files it under."""
    if name in MODEL_FOLDERS:
        return name
    for folder, legacy in LEGACY_SUBDIRS.items():
        if name in legacy:
            return folder
    return None


def is_listed_by_comfyui(folder: str, path: Path) -> bool:
    """Whether ComfyUI would offer ``path`` (a file inside ``folder``) in a loader's list."""
    extensions = FOLDER_EXTENSIONS.get(folder, PT_EXTENSIONS)
    if extensions is None:
        return path.is_dir()
    if not extensions:
        return True
    return path.suffix.lower() in extensions


@dataclass(frozen=True)
class ModelSearchPaths:
    """The folders ComfyUI searches, in its order: the image's own, then the volume's two layouts.

    ``comfyui_models_dir`` is ``$COMFYUI_DIR/models`` (baked models); ``volume_root`` is the network
    volume (``$RUNPOD_VOLUME_PATH``). Either may be ``None`` when absent.
    """

    comfyui_models_dir: Path | None
    volume_root: Path | None
    extra: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)  # from extra_model_paths.yaml

    def roots(self) -> list[Path]:
        """Base folders, each holding ``<folder>`` sub-folders, in search order."""
        roots: list[Path] = []
        if self.comfyui_models_dir is not None:
            roots.append(self.comfyui_models_dir)
        if self.volume_root is not None:
            roots.append(self.volume_root / VOLUME_MODELS_SUBDIR)
            roots.append(self.volume_root)
        return roots

    def dirs_for(self, folder: str) -> list[Path]:
        """Every directory ComfyUI reads for ``folder``, existing or not, in search order."""
        dirs = [root / sub for root in self.roots() for sub in subdirs_for(folder)]
        for sub in subdirs_for(folder):
            dirs += [d for d in self.extra.get(sub, ()) if d not in dirs]
        return dirs


def read_extra_model_paths(path: Path) -> dict[str, tuple[Path, ...]]:
    """Folder -> directories an ``extra_model_paths.yaml`` adds, read the way ComfyUI's
    utils/extra_config.py reads it: ``base_path`` (relative to the file) joined with each line."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    added: dict[str, list[Path]] = {}
    for section in (config or {}).values():
        if not isinstance(section, dict):
            continue
        section = dict(section)
        base = section.pop("base_path", None)
        section.pop("is_default", None)
        base_dir = (path.parent / str(base)) if base is not None else None
        for folder, value in section.items():
            for line in str(value).split("\n"):
                if line.strip():
                    target = Path(line.strip())
                    added.setdefault(str(folder), []).append(
                        target if target.is_absolute() or base_dir is None else base_dir / target
                    )
    return {folder: tuple(dirs) for folder, dirs in added.items()}


def render_extra_model_paths(
    volume_root: Path | str = DEFAULT_VOLUME_ROOT, folders: Iterable[str] = MODEL_FOLDERS
) -> str:
    """``extra_model_paths.yaml`` text that maps every model folder onto the volume, both layouts.

    Section ``runpod_volume`` reads ``<volume>/models/<folder>`` (the right layout); section
    ``runpod_volume_bare`` reads ``<volume>/<folder>`` (the common mistake), so both work.
    """
    root = str(volume_root).rstrip("/") or "/"
    folder_list: Sequence[str] = list(folders)
    lines = [
        "# Generated by `python -m comfy_serverless.provisioning model-paths`; do not edit by hand.",
        "# Passed to ComfyUI with --extra-model-paths-config. Models on the network volume belong in",
        f"# {root}/models/<folder>; the bare {root}/<folder> layout is read too.",
    ]
    sections = (
        ("runpod_volume", f"{root}/{VOLUME_MODELS_SUBDIR}".replace("//", "/")),
        ("runpod_volume_bare", root),
    )
    for section, base in sections:
        lines.append(f"{section}:")
        lines.append(f"  base_path: {base}")
        for folder in folder_list:
            subs = subdirs_for(folder)
            if len(subs) == 1:
                lines.append(f"  {folder}: {subs[0]}/")
            else:
                lines.append(f"  {folder}: |")
                lines.extend(f"    {sub}/" for sub in subs)
    return "\n".join(lines) + "\n"
