"""Directories of the emulated server: models (+ extra model paths), input, output, temp, user.

The folder names and their order are the ones real ComfyUI 0.8.0 lists on ``GET /models``
(transcript 01_meta_endpoints).  File lists are sorted, recursive, relative paths with ``/``
separators, filtered by extension, like the choice lists real ComfyUI puts into ``/object_info``.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("comfy_emulator")

SUPPORTED_PT_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})

# 01_meta_endpoints: GET /models returns exactly these names, in this order.  (name, sub-folders, extensions)
# Sub-folders are below <models>; custom_nodes is <base>/custom_nodes.
MODEL_FOLDERS: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    ("checkpoints", ("checkpoints",), SUPPORTED_PT_EXTENSIONS),
    ("configs", ("configs",), frozenset({".yaml"})),
    ("loras", ("loras",), SUPPORTED_PT_EXTENSIONS),
    ("vae", ("vae",), SUPPORTED_PT_EXTENSIONS),
    ("text_encoders", ("text_encoders", "clip"), SUPPORTED_PT_EXTENSIONS),
    ("diffusion_models", ("unet", "diffusion_models"), SUPPORTED_PT_EXTENSIONS),
    ("clip_vision", ("clip_vision",), SUPPORTED_PT_EXTENSIONS),
    ("style_models", ("style_models",), SUPPORTED_PT_EXTENSIONS),
    ("embeddings", ("embeddings",), SUPPORTED_PT_EXTENSIONS),
    ("diffusers", ("diffusers",), frozenset({"folder"})),
    ("vae_approx", ("vae_approx",), SUPPORTED_PT_EXTENSIONS),
    ("controlnet", ("controlnet", "t2i_adapter"), SUPPORTED_PT_EXTENSIONS),
    ("gligen", ("gligen",), SUPPORTED_PT_EXTENSIONS),
    ("upscale_models", ("upscale_models",), SUPPORTED_PT_EXTENSIONS),
    ("latent_upscale_models", ("latent_upscale_models",), SUPPORTED_PT_EXTENSIONS),
    ("custom_nodes", (), frozenset()),
    ("hypernetworks", ("hypernetworks",), SUPPORTED_PT_EXTENSIONS),
    ("photomaker", ("photomaker",), SUPPORTED_PT_EXTENSIONS),
    ("classifiers", ("classifiers",), frozenset({""})),
    ("model_patches", ("model_patches",), SUPPORTED_PT_EXTENSIONS),
    ("audio_encoders", ("audio_encoders",), SUPPORTED_PT_EXTENSIONS),
)
# newer: folder_paths.py @1df2885ebd adds seven folders (spec section 7).  "datasets" (no extension filter)
# comes right after custom_nodes and, like "fonts" (.ttf/.otf), lives in <base>, not <models>; the five
# model folders follow audio_encoders.  (name, placed after, folder, extensions)
NEWER_MODEL_FOLDERS: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    ("datasets", "custom_nodes", "<base>/datasets", frozenset()),
    ("background_removal", "audio_encoders", "background_removal", SUPPORTED_PT_EXTENSIONS),
    ("frame_interpolation", "background_removal", "frame_interpolation", SUPPORTED_PT_EXTENSIONS),
    ("geometry_estimation", "frame_interpolation", "geometry_estimation", SUPPORTED_PT_EXTENSIONS),
    ("optical_flow", "geometry_estimation", "optical_flow", SUPPORTED_PT_EXTENSIONS),
    ("detection", "optical_flow", "detection", SUPPORTED_PT_EXTENSIONS),
    ("fonts", "detection", "<base>/fonts", frozenset({".ttf", ".otf"})),
)

# Names accepted in extra_model_paths.yaml that real ComfyUI maps to the current folder names.
LEGACY_FOLDER_NAMES = {"clip": "text_encoders", "unet": "diffusion_models"}

# Content types for /view and for the input-file filters of LoadImage/LoadAudio/LoadVideo.  Explicit so
# the answer does not depend on the host's /etc/mime.types (values as recorded in 03, 08, 09, 10).
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".wav": "audio/x-wav",
    ".m4a": "audio/mp4",
    ".json": "application/json",
    ".txt": "text/plain",
    ".glb": "model/gltf-binary",
    ".latent": "application/octet-stream",
}


def content_type_for(filename: str) -> str | None:
    ext = os.path.splitext(filename)[1].lower()
    if ext in CONTENT_TYPES:
        return CONTENT_TYPES[ext]
    return mimetypes.guess_type(filename)[0]


def recursive_files(directory: str) -> list[str]:
    """Relative paths ('/'-separated) of all files below ``directory``; follows symlinks, skips .git."""
    out: list[str] = []
    if not os.path.isdir(directory):
        return out
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), directory)
            out.append(rel.replace(os.sep, "/"))
    return out


class FolderPaths:
    """Where everything lives; mirrors the layout real ComfyUI derives from its command line."""

    def __init__(
        self,
        base_dir: str,
        input_dir: str,
        output_dir: str,
        temp_dir: str,
        user_dir: str,
        models_dir: str | None = None,
        newer_folders: bool = False,
    ) -> None:
        self.base_dir = os.path.abspath(base_dir)
        self.models_dir = os.path.abspath(models_dir or os.path.join(self.base_dir, "models"))
        self.input_dir = os.path.abspath(input_dir)
        self.output_dir = os.path.abspath(output_dir)
        self.temp_dir = os.path.abspath(temp_dir)
        self.user_dir = os.path.abspath(user_dir)
        table: list[tuple[str, list[str], frozenset[str]]] = []
        for name, subdirs, exts in MODEL_FOLDERS:
            paths = [os.path.join(self.models_dir, s) for s in subdirs]
            if name == "custom_nodes":
                paths = [os.path.join(self.base_dir, "custom_nodes")]
            table.append((name, paths, exts))
        if newer_folders:
            for name, after, folder, exts in NEWER_MODEL_FOLDERS:
                if folder.startswith("<base>/"):
                    path = os.path.join(self.base_dir, folder.removeprefix("<base>/"))
                else:
                    path = os.path.join(self.models_dir, folder)
                index = next(i for i, entry in enumerate(table) if entry[0] == after)
                table.insert(index + 1, (name, [path], exts))
        self.folders: dict[str, tuple[list[str], frozenset[str]]] = {
            name: (paths, exts) for name, paths, exts in table
        }

    # ------------------------------------------------------------------ model folders
    def add_model_folder_path(self, name: str, path: str, is_default: bool = False) -> None:
        name = LEGACY_FOLDER_NAMES.get(name, name)
        path = os.path.normpath(path)
        if name in self.folders:
            paths = self.folders[name][0]
            if path in paths:
                paths.remove(path)
            if is_default:
                paths.insert(0, path)
            else:
                paths.append(path)
        else:
            # Unknown folder names become new folders that accept any extension.
            self.folders[name] = ([path], frozenset())

    def folder_names(self) -> list[str]:
        return list(self.folders)

    def get_filename_list(self, name: str) -> list[str]:
        if name not in self.folders:
            return []
        paths, exts = self.folders[name]
        found: set[str] = set()
        if "folder" in exts:
            # diffusers: directories that hold a model_index.json
            for base in paths:
                for rel in recursive_files(base):
                    if rel.endswith("model_index.json") and "/" in rel:
                        found.add(rel.rsplit("/", 1)[0])
            return sorted(found)
        for base in paths:
            for rel in recursive_files(base):
                if not exts or os.path.splitext(rel)[1].lower() in exts:
                    found.add(rel)
        return sorted(found)

    def get_full_path(self, name: str, filename: str) -> str | None:
        if name not in self.folders:
            return None
        rel = os.path.normpath(filename.replace("/", os.sep))
        for base in self.folders[name][0]:
            full = os.path.join(base, rel)
            if os.path.isfile(full) or os.path.isdir(full):
                return full
        return None

    # ------------------------------------------------------------------ input/output/temp
    def directory_by_type(self, kind: str | None) -> str | None:
        return {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}.get(kind or "")

    def annotated_filepath(self, name: str) -> tuple[str, str | None]:
        """``"x.png [output]"`` -> ("x.png", output_dir) (20_view_variants: ``name [input]``)."""
        for tag, directory in (
            ("[output]", self.output_dir),
            ("[input]", self.input_dir),
            ("[temp]", self.temp_dir),
        ):
            if name.endswith(tag):
                return name[: -len(tag) - 1], directory
        return name, None

    def get_annotated_filepath(self, name: str, default_dir: str | None = None) -> str:
        name, directory = self.annotated_filepath(name)
        if directory is None:
            directory = default_dir or self.input_dir
        return os.path.join(directory, name)

    def exists_annotated_filepath(self, name: str) -> bool:
        return os.path.exists(self.get_annotated_filepath(name))

    def input_files(self, content_types: Iterable[str] | None = None, subdir: str = "") -> list[str]:
        """Top-level files of the input folder (LoadImage's list; files in subfolders are not listed,
        see 05_upload_and_invert where ``anchors_sub/sub_input.png`` is missing from the list)."""
        directory = os.path.join(self.input_dir, subdir) if subdir else self.input_dir
        try:
            names = [f for f in os.listdir(directory) if os.path.isfile(os.path.join(directory, f))]
        except OSError:
            return []
        if content_types is not None:
            wanted = tuple(content_types)
            names = [n for n in names if (content_type_for(n) or "").split("/")[0] in wanted]
        return sorted(names)

    def get_save_image_path(
        self, filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0
    ) -> tuple[str, str, int, str, str]:
        """Where a save node writes, and the next free counter (``{prefix}_{counter:05}_.ext``).

        03/04: the counter continues from files already present (``anchor_tiny_00002_.png``);
        06: a prefix ``sub/name`` gives ``subfolder: "sub"``.  A prefix that leaves the output folder
        raises the same plain ``Exception`` real ComfyUI raises.
        """
        if "%" in filename_prefix:
            filename_prefix = _compute_vars(filename_prefix, image_width, image_height)
        normalized = os.path.normpath(filename_prefix)
        subfolder = os.path.dirname(normalized)
        filename = os.path.basename(normalized)
        full_output_folder = os.path.join(output_dir, subfolder)
        common = os.path.commonpath((output_dir, os.path.abspath(full_output_folder)))
        if common != output_dir:
            err = (
                "**** ERROR: Saving image outside the output folder is not allowed."
                + "\n full_output_folder: "
                + os.path.abspath(full_output_folder)
                + "\n         output_dir: "
                + output_dir
                + "\n         commonpath: "
                + common
            )
            log.error(err)
            raise PlainException(err, [SAVE_PATH_FRAME])
        counter = 1
        try:
            existing = os.listdir(full_output_folder)
        except FileNotFoundError:
            os.makedirs(full_output_folder, exist_ok=True)
            existing = []
        best = 0
        found = False
        for name in existing:
            if not name.startswith(filename + "_"):
                continue
            token = name[len(filename) + 1 :].split("_")[0]
            try:
                number = int(token)
            except ValueError:
                number = 0
            found = True
            best = max(best, number)
        if found:
            counter = best + 1
        return full_output_folder, filename, counter, subfolder, filename_prefix


class PlainException(Exception):
    """Stands for a bare ``Exception`` raised by ComfyUI code (exception_type ``"Exception"``)."""

    def __init__(self, message: str, frames: list[str] | None = None) -> None:
        super().__init__(message)
        self.frames = frames or []


SAVE_PATH_FRAME = (
    '  File "/opt/ComfyUI/folder_paths.py", line 446, in get_save_image_path\n    raise Exception(err)\n'
)


def _compute_vars(text: str, width: int, height: int) -> str:
    now = time.localtime()
    for key, value in (
        ("%width%", str(width)),
        ("%height%", str(height)),
        ("%year%", str(now.tm_year)),
        ("%month%", str(now.tm_mon).zfill(2)),
        ("%day%", str(now.tm_mday).zfill(2)),
        ("%hour%", str(now.tm_hour).zfill(2)),
        ("%minute%", str(now.tm_min).zfill(2)),
        ("%second%", str(now.tm_sec).zfill(2)),
    ):
        text = text.replace(key, value)
    return text


# ---------------------------------------------------------------------- extra_model_paths.yaml
def load_extra_model_paths(folders: FolderPaths, yaml_path: str) -> None:
    """Apply a ComfyUI ``extra_model_paths.yaml``: ``name: {base_path: ..., is_default: ..., folder: paths}``.

    A folder value may hold several paths, one per line (YAML block scalar).  Relative paths are joined to
    ``base_path``; without ``base_path`` they are relative to the YAML file's directory.
    """
    with open(yaml_path, encoding="utf-8") as fh:
        text = fh.read()
    config = parse_yaml(text)
    yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
    if not isinstance(config, dict):
        return
    for section in config.values():
        if not isinstance(section, dict):
            continue
        conf = dict(section)
        base_path = conf.pop("base_path", None)
        if base_path:
            base_path = os.path.expandvars(os.path.expanduser(str(base_path)))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = bool(conf.pop("is_default", False))
        for folder_name, value in conf.items():
            if value is None:
                continue
            for line in str(value).split("\n"):
                line = line.strip()
                if not line:
                    continue
                full = line
                if base_path:
                    full = os.path.join(str(base_path), full)
                elif not os.path.isabs(full):
                    full = os.path.abspath(os.path.join(yaml_dir, line))
                log.info("Adding extra search path %s %s", folder_name, os.path.normpath(full))
                folders.add_model_folder_path(str(folder_name), full, is_default)


def parse_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is normally importable
        return parse_simple_yaml(text)
    return yaml.safe_load(text)


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """Tiny YAML subset parser for extra_model_paths files when PyYAML is missing.

    Supports nested mappings by indentation, ``#`` comments, quoted scalars and ``|``/``>`` block scalars.
    """
    lines = text.splitlines()
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = _strip_comment(raw).rstrip()
        if not stripped.strip():
            i += 1
            continue
        indent = len(stripped) - len(stripped.lstrip(" "))
        content = stripped.strip()
        while stack and indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        if ":" not in content:
            i += 1
            continue
        key, _, rest = content.partition(":")
        key = _unquote(key.strip())
        rest = rest.strip()
        if rest in ("|", "|-", "|+", ">", ">-", ">+"):
            block: list[str] = []
            j = i + 1
            block_indent: int | None = None
            while j < len(lines):
                candidate = lines[j]
                if not candidate.strip():
                    block.append("")
                    j += 1
                    continue
                cand_indent = len(candidate) - len(candidate.lstrip(" "))
                if cand_indent <= indent:
                    break
                if block_indent is None:
                    block_indent = cand_indent
                block.append(candidate[block_indent:])
                j += 1
            joiner = "\n" if rest.startswith("|") else " "
            parent[key] = joiner.join(block).strip("\n") + ("\n" if rest.startswith("|") else "")
            i = j
            continue
        if rest == "":
            child: dict[str, Any] = {}
            parent[key] = child
            stack.append((indent, child))
        else:
            parent[key] = _scalar(rest)
        i += 1
    # empty sections are None in real YAML
    return root


def _strip_comment(line: str) -> str:
    out = []
    quote: str | None = None
    for idx, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (idx == 0 or line[idx - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _scalar(value: str) -> Any:
    if value in ("true", "True", "yes"):
        return True
    if value in ("false", "False", "no"):
        return False
    if value in ("null", "~"):
        return None
    return _unquote(value)
