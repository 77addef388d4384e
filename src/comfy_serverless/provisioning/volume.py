"""Network-volume layout diagnosis, model file counts, and context for "model not in list" errors.

RunPod mounts a serverless endpoint's network volume at ``/runpod-volume``. ComfyUI models belong in
``/runpod-volume/models/<folder>``; a very common mistake puts them straight into
``/runpod-volume/<folder>``. The image's ``extra_model_paths.yaml`` reads both, and
:func:`diagnose_volume` says which one it found, what else looks wrong, and how to fix it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .folders import (
    LEGACY_SUBDIRS,
    LOADER_INPUTS,
    MODEL_FOLDERS,
    PT_EXTENSIONS,
    VOLUME_MODELS_SUBDIR,
    ModelSearchPaths,
    canonical_folder,
    folder_for_input,
    is_listed_by_comfyui,
    subdirs_for,
)

_KNOWN_SUBDIRS: tuple[str, ...] = tuple(sub for f in MODEL_FOLDERS for sub in subdirs_for(f))
_MODEL_SUFFIXES = PT_EXTENSIONS | {".gguf", ".onnx", ".engine"}
_IGNORED_TOP = {"lost+found", VOLUME_MODELS_SUBDIR}
_MAX_WALK = 50_000  # entries visited by one search, so a huge volume cannot stall start-up


@dataclass(frozen=True)
class FolderCount:
    """Files ComfyUI would list in one directory of one model folder."""

    folder: str
    path: Path
    files: int
    unlisted: tuple[str, ...] = ()  # files ComfyUI will not offer (wrong extension), first few
    empty: tuple[str, ...] = ()  # zero-byte files (failed downloads), first few


def _walk_files(directory: Path, max_depth: int = 8) -> Iterator[Path]:
    """Files below ``directory`` (following links like ComfyUI does), skipping ``.git``."""
    visited = 0
    base_depth = len(directory.parts)
    for current, dirs, files in os.walk(directory, followlinks=True):
        here = Path(current)
        dirs[:] = [d for d in dirs if d != ".git" and len(here.parts) - base_depth < max_depth]
        for name in files:
            visited += 1
            if visited > _MAX_WALK:
                return
            yield here / name


def scan_folder(folder: str, directory: Path, sample: int = 3) -> FolderCount:
    """Count what ComfyUI lists in ``directory`` for ``folder``, and note files it would skip."""
    if folder == "diffusers":
        models = [p for p in directory.iterdir() if p.is_dir()] if directory.is_dir() else []
        return FolderCount(folder, directory, len(models))
    listed = 0
    unlisted: list[str] = []
    empty: list[str] = []
    for path in _walk_files(directory):
        rel = path.relative_to(directory).as_posix()
        if not is_listed_by_comfyui(folder, path):
            if not path.name.startswith(".") and len(unlisted) < sample:
                unlisted.append(rel)
            continue
        listed += 1
        try:
            if path.stat().st_size == 0 and len(empty) < sample:
                empty.append(rel)
        except OSError:
            continue
    return FolderCount(folder, directory, listed, tuple(unlisted), tuple(empty))


def count_model_files(paths: ModelSearchPaths, folders: Sequence[str] = MODEL_FOLDERS) -> list[FolderCount]:
    """One :class:`FolderCount` per existing directory ComfyUI searches, in search order."""
    counts = []
    for folder in folders:
        for directory in paths.dirs_for(folder):
            if directory.is_dir():
                counts.append(scan_folder(folder, directory))
    return counts


class VolumeLayout(StrEnum):
    """What the network volume looks like."""

    NOT_MOUNTED = "not mounted"
    EMPTY = "empty"
    STANDARD = "models/<folder> (correct)"
    BARE = "bare <folder> at the volume root"
    MIXED = "both models/<folder> and bare <folder>"
    NESTED = "models below another folder"
    UNRECOGNISED = "no model folder found"


@dataclass(frozen=True)
class VolumeReport:
    """The diagnosis of one volume. ``problems`` hide models from ComfyUI; ``warnings`` do not."""

    root: Path
    layout: VolumeLayout
    standard: tuple[FolderCount, ...] = ()
    bare: tuple[FolderCount, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    nested_roots: tuple[Path, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when nothing on the volume is hidden from ComfyUI."""
        return not self.problems

    @property
    def headline(self) -> str:
        counts = ", ".join(f"{c.path.relative_to(self.root)} {c.files}" for c in (*self.standard, *self.bare))
        state = "OK" if self.ok and not self.warnings else ("LOOKS WRONG" if not self.ok else "works, but")
        found = f" [{counts}]" if counts else ""
        return f"{self.root}: {self.layout.value} - {state}{found}"

    def detail_lines(self) -> list[str]:
        lines = [f"problem: {p}" for p in self.problems]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"fix: {f}" for f in self.fixes]
        return lines

    def render(self) -> str:
        """The report as text, headline first."""
        return "\n".join([f"Network volume {self.headline}", *(f"  {line}" for line in self.detail_lines())])


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _loose_model_files(path: Path) -> list[str]:
    try:
        return sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in _MODEL_SUFFIXES)
    except OSError:
        return []


def _close_folder(name: str) -> str | None:
    lowered = name.lower()
    if lowered in _KNOWN_SUBDIRS and name not in _KNOWN_SUBDIRS:
        return lowered
    if name in _KNOWN_SUBDIRS:
        return None
    match = difflib.get_close_matches(lowered, _KNOWN_SUBDIRS, n=1, cutoff=0.75)
    return match[0] if match else None


def _counts(parent: Path) -> list[FolderCount]:
    found = []
    for directory in _dirs(parent):
        folder = canonical_folder(directory.name)
        if folder is not None:
            found.append(scan_folder(folder, directory))
    return found


def _find_nested(root: Path, max_depth: int = 3) -> list[Path]:
    """``<something>/models`` folders below ``root`` (not ``root/models``) that hold model folders."""
    nested: list[Path] = []
    frontier = [
        (d, 1) for d in _dirs(root) if d.name not in _IGNORED_TOP and canonical_folder(d.name) is None
    ]
    while frontier:
        directory, depth = frontier.pop(0)
        for child in _dirs(directory):
            if child.name == "models" and any(canonical_folder(d.name) for d in _dirs(child)):
                nested.append(child)
            elif depth < max_depth and canonical_folder(child.name) is None:
                frontier.append((child, depth + 1))
    return nested


def _some_model_files(root: Path, limit: int = 5) -> list[Path]:
    found = []
    for path in _walk_files(root, max_depth=5):
        if path.suffix.lower() in _MODEL_SUFFIXES:
            found.append(path)
            if len(found) >= limit:
                break
    return found


def _file_issues(counts: Sequence[FolderCount], problems: list[str], warnings: list[str]) -> None:
    for count in counts:
        if count.empty:
            problems.append(
                f"{count.path} holds zero-byte file(s) {', '.join(count.empty)}: probably failed downloads; "
                "ComfyUI lists them but cannot load them"
            )
        if count.unlisted:
            warnings.append(
                f"{count.path} holds file(s) ComfyUI does not list there ({', '.join(count.unlisted)}): "
                "wrong extension, or a format only a custom node reads (e.g. .gguf)"
            )


def diagnose_volume(root: Path) -> VolumeReport:
    """Look at a network volume and say how its models are laid out and what to fix."""
    if not root.is_dir():
        return VolumeReport(
            root,
            VolumeLayout.NOT_MOUNTED,
            notes=(
                f"no network volume at {root}; models come from the image only. If you attached a volume, "
                "RunPod mounts it at /runpod-volume on serverless workers "
                "(set RUNPOD_VOLUME_PATH if yours differs)",
            ),
        )
    entries = [p for p in (root.iterdir()) if not p.name.startswith(".") and p.name != "lost+found"]
    if not entries:
        return VolumeReport(
            root,
            VolumeLayout.EMPTY,
            notes=(f"the volume at {root} is empty; put models in {root}/models/<folder>",),
        )

    models_dir = root / VOLUME_MODELS_SUBDIR
    standard = _counts(models_dir) if models_dir.is_dir() else []
    bare = _counts(root)
    problems: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    fixes: list[str] = []

    for parent in (models_dir, root):
        for directory in _dirs(parent):
            if parent == root and directory.name in _IGNORED_TOP:
                continue
            suggestion = _close_folder(directory.name)
            if suggestion is not None:
                problems.append(f"{directory} is not a folder ComfyUI reads; it looks like `{suggestion}`")
                fixes.append(f"mv '{directory}' '{parent / suggestion}'")
        loose = _loose_model_files(parent)
        if loose:
            shown = ", ".join(loose[:5]) + (" ..." if len(loose) > 5 else "")
            problems.append(
                f"model files lie directly in {parent} ({shown}); ComfyUI only reads them inside a folder"
            )
            fixes.append(
                f"move each into {models_dir}/<folder> for the loader that uses it: "
                "checkpoints (Load Checkpoint), "
                "diffusion_models (Load Diffusion Model), text_encoders (Load CLIP), vae, loras, ..."
            )

    legacy = [c for c in (*standard, *bare) if c.path.name in {s for v in LEGACY_SUBDIRS.values() for s in v}]
    if legacy:
        notes.append(
            "legacy folder names are read as their new ones: "
            + ", ".join(f"{c.path.name} -> {c.folder}" for c in legacy)
        )
    _file_issues([*standard, *bare], problems, warnings)

    nested: list[Path] = []
    if standard and bare:
        layout = VolumeLayout.MIXED
        names = ", ".join(c.path.name for c in bare)
        warnings.append(
            f"models are split between {models_dir}/<folder> and bare folders at {root} ({names}); "
            "both are read, "
            f"{models_dir} first"
        )
        fixes.append(_move_fix(root, bare))
    elif standard:
        layout = VolumeLayout.STANDARD
    elif bare:
        layout = VolumeLayout.BARE
        found = ", ".join(f"{c.path.name} ({c.files} files)" for c in bare)
        warnings.append(
            f"models are in bare folders at the volume root: {found}. This worker reads them, "
            "but the expected "
            f"layout is {models_dir}/<folder>, which other ComfyUI workers and pods read too"
        )
        fixes.append(_move_fix(root, bare))
    else:
        nested = _find_nested(root)
        if nested:
            layout = VolumeLayout.NESTED
            shown = ", ".join(str(n) for n in nested)
            problems.append(
                f"no model folder at {models_dir} or {root}, but model folders were found in {shown}"
            )
            first = nested[0]
            fixes.append(f"mv '{first}' '{models_dir}'  (or move its sub-folders there)")
            fixes.append(
                f"or set the endpoint variable RUNPOD_VOLUME_PATH={first.parent} "
                "so the worker reads it in place"
            )
        else:
            layout = VolumeLayout.UNRECOGNISED
            top = ", ".join(sorted(p.name for p in entries)[:10])
            files = _some_model_files(root)
            seen = (
                "; model files seen: " + ", ".join(str(p) for p in files)
                if files
                else "; no model files seen"
            )
            problems.append(f"found no ComfyUI model folder on the volume (top level: {top}){seen}")
            fixes.append(
                f"create {models_dir}/<folder> "
                "(checkpoints, diffusion_models, text_encoders, vae, loras, ...) "
                "and move each file into the folder of the loader that uses it"
            )
    if layout in (VolumeLayout.STANDARD, VolumeLayout.MIXED, VolumeLayout.BARE) and not (
        any(c.files for c in (*standard, *bare))
    ):
        notes.append("the model folders exist but hold no file ComfyUI lists")
    return VolumeReport(
        root,
        layout,
        tuple(standard),
        tuple(bare),
        tuple(problems),
        tuple(warnings),
        tuple(notes),
        tuple(dict.fromkeys(fixes)),
        tuple(nested),
    )


def _move_fix(root: Path, bare: Sequence[FolderCount]) -> str:
    sources = " ".join(f"'{c.path}'" for c in bare)
    return (
        f"mkdir -p '{root}/models' && mv {sources} '{root}/models/'  "
        "(from a pod with the volume at /workspace: "
        f"use /workspace instead of {root}; merge by hand any folder that already exists there)"
    )


def _listed_names(paths: ModelSearchPaths, folder: str) -> list[str]:
    names: set[str] = set()
    for directory in paths.dirs_for(folder):
        if not directory.is_dir():
            continue
        if folder == "diffusers":
            names.update(p.name for p in directory.iterdir() if p.is_dir())
            continue
        for path in _walk_files(directory):
            if is_listed_by_comfyui(folder, path):
                names.add(path.relative_to(directory).as_posix())
    return sorted(names)


def _locate(name: str, roots: Sequence[Path]) -> list[Path]:
    base = Path(name).name.lower()
    hits: list[Path] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in _walk_files(root, max_depth=6):
            if path.name.lower() == base:
                resolved = path.resolve()
                if resolved not in seen:
                    seen.add(resolved)
                    hits.append(path)
    return hits


def _folder_of(path: Path, paths: ModelSearchPaths) -> str | None:
    for root in paths.roots():
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        if len(rel.parts) > 1:
            return canonical_folder(rel.parts[0])
    return None


def _loader_for(folder: str) -> str:
    loaders = sorted({cls for (cls, _), f in LOADER_INPUTS.items() if f == folder})
    return ", ".join(loaders[:3]) if loaders else "a loader for that folder"


def explain_missing_model(
    value: str,
    *,
    input_name: str | None = None,
    class_type: str | None = None,
    folder: str | None = None,
    available: Sequence[str] | None = None,
    paths: ModelSearchPaths | None = None,
    volume: VolumeReport | None = None,
) -> str:
    """Context for ComfyUI's "Value not in list" on a model input: where the worker looked, what it found,
    and the likely fix.

    ``value`` is the missing file name; ``input_name``/``class_type`` (e.g. ``ckpt_name`` of
    ``CheckpointLoaderSimple``) or ``folder`` say which model folder it belongs to; ``available`` is
    the list ComfyUI offered, if known; ``paths`` the searched roots (image models dir and volume);
    ``volume`` a :func:`diagnose_volume` report to append when the volume looks wrong.
    """
    folder = folder or folder_for_input(class_type, input_name)
    who = (
        " of ".join(x for x in (f"`{input_name}`" if input_name else "", class_type or "") if x)
        or "the input"
    )
    lines: list[str] = []
    if folder is None:
        lines.append(f"{who} asks for `{value}`, which ComfyUI does not offer.")
        if available:
            lines.append(_similar_line(value, available))
        lines.append("This input is not a known model loader; check the node's options in ComfyUI.")
        return "\n".join(line for line in lines if line)

    lines.append(f"{who} asks for `{value}`, which is not in ComfyUI's `{folder}` folder.")
    paths = paths or ModelSearchPaths(None, None)
    searched = paths.dirs_for(folder)
    if searched:
        shown = []
        for directory in searched:
            if directory.is_dir():
                count = scan_folder(folder, directory).files
                shown.append(f"{directory} ({count} file{'s' if count != 1 else ''})")
            elif directory.name == folder:
                shown.append(f"{directory} (missing)")
        lines.append("Looked in: " + "; ".join(shown))
    names = list(available) if available is not None else _listed_names(paths, folder)
    if names:
        preview = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        lines.append(f"ComfyUI offers {len(names)} file(s) there: {preview}")
    else:
        lines.append(f"ComfyUI offers no file at all in `{folder}`.")

    roots = list(paths.roots())
    if paths.volume_root is not None and paths.volume_root not in roots:
        roots.append(paths.volume_root)
    hits = _locate(value, roots)
    fix: str | None = None
    searched_set = {d.resolve() for d in searched if d.is_dir()}
    for hit in hits[:3]:
        inside = next((d for d in searched_set if hit.resolve().is_relative_to(d)), None)
        other_folder = _folder_of(hit, paths)
        if inside is not None:
            if not is_listed_by_comfyui(folder, hit):
                lines.append(f"Found {hit}, but ComfyUI does not list `{hit.suffix}` files in `{folder}`.")
                fix = "use the loader node of the custom node that reads this format, or convert the file"
            elif hit.stat().st_size == 0:
                lines.append(f"Found {hit}, but it is empty (zero bytes): a failed download.")
                fix = f"download the file again to {hit}"
            else:
                rel = hit.resolve().relative_to(inside).as_posix()
                lines.append(f"Found {hit}, listed as `{rel}`.")
                fix = f"use the name `{rel}` in the workflow (sub-folders are part of the name)"
        elif other_folder is not None and other_folder != folder:
            lines.append(
                f"Found {hit} in folder `{other_folder}`, but {class_type or 'this input'} reads `{folder}`."
            )
            fix = (
                f"load it with a node that reads `{other_folder}` ({_loader_for(other_folder)}), "
                f"or move it to `{folder}` if it really is that kind of model"
            )
        else:
            lines.append(f"Found {hit}, in a place the worker does not read.")
            target = paths.volume_root / VOLUME_MODELS_SUBDIR / folder if paths.volume_root else None
            fix = f"move it to {target}/" if target else f"move it into a `{folder}` folder the worker reads"
    if available is not None or names:
        similar = _similar_line(value, names)
        if similar:
            lines.append(similar)
            fix = fix or "correct the file name in the workflow"
    if fix is None:
        if paths.volume_root is not None and paths.volume_root.is_dir():
            fix = (
                f"upload it to {paths.volume_root / VOLUME_MODELS_SUBDIR / folder}/, "
                "or bake it into the image "
                "with a model manifest"
            )
        else:
            fix = (
                "bake it into the image with a model manifest (Dockerfile.serverless), "
                "or attach a network volume "
                f"that holds it in models/{folder}/"
            )
    lines.append(f"Likely fix: {fix}.")
    if volume is not None and not volume.ok:
        lines.append(f"The network volume looks wrong: {volume.headline}")
        lines.extend(f"  {line}" for line in volume.detail_lines())
    return "\n".join(lines)


def _similar_line(value: str, names: Sequence[str]) -> str:
    if not names:
        return ""
    lowered = {n.lower(): n for n in names}
    close: list[str] = []
    if value.lower() in lowered:
        close.append(lowered[value.lower()])
    base = Path(value).name.lower()
    close += [n for n in names if Path(n).name.lower() == base and n not in close]
    stem = Path(value).stem.lower()
    close += [n for n in names if Path(n).stem.lower() == stem and n not in close]
    # Compare stems: a shared ".safetensors" alone makes unrelated names look 60 % alike.
    by_stem: dict[str, str] = {}
    for n in names:
        by_stem.setdefault(Path(n).stem.lower(), n)
    close += [
        by_stem[s]
        for s in difflib.get_close_matches(stem, list(by_stem), n=3, cutoff=0.6)
        if by_stem[s] not in close
    ]
    return "Similar names there: " + ", ".join(close[:4]) if close else ""
