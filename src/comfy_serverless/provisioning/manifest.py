"""Model manifests: which files to bake into an image, from where, into which folder, with which sha256.

A manifest is YAML or JSON::

    version: 1
    models:
      - name: ltx-2-19b-dev-fp8.safetensors      # file name ComfyUI lists (may hold a sub-folder)
        url: https://huggingface.co/Lightricks/LTX-2/resolve/<revision>/ltx-2-19b-dev-fp8.safetensors
        folder: checkpoints                      # ComfyUI model folder
        sha256: 0123...cdef                      # 64 hex digits; the download must match
        sets: [ltx2]                             # named sets this file belongs to
        token_env: HF_TOKEN                      # optional: bearer token for gated repositories

``select_models(manifest, "ltx2")`` picks a named set; ``all`` picks every entry and ``none`` nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from .folders import MODEL_FOLDERS, canonical_folder

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FOLDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALL_SET = "all"
NO_SET = "none"
_URL_SCHEMES = ("https", "http", "file")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class ModelEntry:
    """One model file of a manifest."""

    name: str
    url: str
    folder: str
    sha256: str
    sets: tuple[str, ...] = ()
    token_env: str | None = None

    @property
    def relative_path(self) -> PurePosixPath:
        """Where the file goes below a models root: ``<folder>/<name>``."""
        return PurePosixPath(self.folder) / self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping in manifest field order, without empty optional fields."""
        data: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "folder": self.folder,
            "sha256": self.sha256,
        }
        if self.sets:
            data["sets"] = list(self.sets)
        if self.token_env:
            data["token_env"] = self.token_env
        return data


@dataclass(frozen=True)
class ModelManifest:
    """A parsed, validated model manifest."""

    models: tuple[ModelEntry, ...]
    source: str = "<manifest>"
    warnings: tuple[str, ...] = field(default=())

    @property
    def set_names(self) -> list[str]:
        """Every set name used by some entry, sorted."""
        return sorted({s for m in self.models for s in m.sets})


def _load_document(text: str, source: str) -> Any:
    suffix = Path(source).suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source}: not valid JSON: {exc}") from exc
    import yaml  # PyYAML; only needed for YAML manifests

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: not valid YAML: {exc}") from exc


def validate_model_name(name: object, where: str) -> str:
    """A file name relative to its folder: no absolute path, no ``..``, no backslash, not empty."""
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{where}: `name` must be a non-empty string")
    path = PurePosixPath(name)
    if name != name.strip() or "\\" in name or path.is_absolute() or ".." in path.parts or name.endswith("/"):
        raise ManifestError(
            f"{where}: `name` {name!r} must be a relative file name such as `model.safetensors` "
            "or `sdxl/model.safetensors` (no leading `/`, no `..`, no backslash)"
        )
    return name


def _validate_url(url: object, where: str) -> str:
    if not isinstance(url, str) or not url:
        raise ManifestError(f"{where}: `url` must be a non-empty string")
    parsed = urlparse(url)
    if parsed.scheme not in _URL_SCHEMES or (parsed.scheme != "file" and not parsed.netloc):
        raise ManifestError(f"{where}: `url` {url!r} must be an http(s):// or file:// URL")
    return url


def _validate_folder(folder: object, where: str, warnings: list[str]) -> str:
    if not isinstance(folder, str) or not _FOLDER_RE.match(folder):
        raise ManifestError(
            f"{where}: `folder` must be one ComfyUI model folder name such as `checkpoints`, got {folder!r}"
        )
    canonical = canonical_folder(folder)
    if canonical is None:
        warnings.append(
            f"{where}: folder `{folder}` is not one ComfyUI knows ({', '.join(MODEL_FOLDERS)}); "
            "that is fine only for a custom node that reads its own folder"
        )
        return folder
    return canonical


def _validate_sha256(value: object, where: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value.strip().lower()):
        raise ManifestError(
            f"{where}: `sha256` must be the file's SHA-256 as 64 hex digits, got {value!r}; "
            "`python -m comfy_serverless.provisioning models-from-workflow --resolve-hashes` can find it"
        )
    return value.strip().lower()


def parse_model_manifest(data: Any, source: str = "<manifest>") -> ModelManifest:
    """Validate a decoded manifest document; raise :class:`ManifestError` naming every bad field."""
    if isinstance(data, list):
        data = {"models": data}
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source}: expected a mapping with a `models` list")
    version = data.get("version", 1)
    if version != 1:
        raise ManifestError(f"{source}: unsupported manifest version {version!r} (this worker reads 1)")
    unknown_top = set(data) - {"version", "models"}
    if unknown_top:
        raise ManifestError(f"{source}: unknown top-level keys {sorted(unknown_top)}")
    raw_models = data.get("models") or []
    if not isinstance(raw_models, list):
        raise ManifestError(f"{source}: `models` must be a list")
    warnings: list[str] = []
    entries: list[ModelEntry] = []
    seen: dict[PurePosixPath, str] = {}
    for index, raw in enumerate(raw_models):
        where = f"{source}: models[{index}]"
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{where}: expected a mapping")
        unknown = set(raw) - {"name", "url", "folder", "sha256", "sets", "token_env"}
        if unknown:
            raise ManifestError(f"{where}: unknown keys {sorted(unknown)}")
        name = validate_model_name(raw.get("name"), where)
        where = f"{source}: models[{index}] ({name})"
        sets_raw = raw.get("sets", [])
        if isinstance(sets_raw, str):
            sets_raw = [sets_raw]
        if not isinstance(sets_raw, list) or not all(
            isinstance(s, str) and _SET_NAME_RE.match(s) for s in sets_raw
        ):
            raise ManifestError(f"{where}: `sets` must be a list of names such as [sdxl, ltx2]")
        if any(s in (ALL_SET, NO_SET) for s in sets_raw):
            raise ManifestError(f"{where}: `{ALL_SET}` and `{NO_SET}` are reserved set names")
        token_env = raw.get("token_env")
        if token_env is not None and (not isinstance(token_env, str) or not _ENV_RE.match(token_env)):
            raise ManifestError(f"{where}: `token_env` must be an environment variable name such as HF_TOKEN")
        entry = ModelEntry(
            name=name,
            url=_validate_url(raw.get("url"), where),
            folder=_validate_folder(raw.get("folder"), where, warnings),
            sha256=_validate_sha256(raw.get("sha256"), where),
            sets=tuple(dict.fromkeys(sets_raw)),
            token_env=token_env,
        )
        if entry.relative_path in seen:
            raise ManifestError(
                f"{where}: `{entry.relative_path}` is listed twice (also {seen[entry.relative_path]})"
            )
        seen[entry.relative_path] = f"models[{index}]"
        entries.append(entry)
    return ModelManifest(models=tuple(entries), source=source, warnings=tuple(warnings))


def load_model_manifest(path: Path) -> ModelManifest:
    """Read and validate a model manifest file (``.yaml``, ``.yml`` or ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc.strerror or exc}") from exc
    return parse_model_manifest(_load_document(text, str(path)), str(path))


def select_models(manifest: ModelManifest, set_names: str | Sequence[str]) -> list[ModelEntry]:
    """Entries of the named set(s); ``all`` means every entry, ``none`` (or empty) none.

    Several sets may be given as a list or comma-separated (``sdxl,upscalers``); an unknown name
    fails with the list of known ones, so a typo in a build argument cannot bake an empty image.
    """
    names = [n.strip() for n in set_names.split(",")] if isinstance(set_names, str) else list(set_names)
    names = [n for n in names if n]
    if not names or names == [NO_SET]:
        return []
    if ALL_SET in names:
        return list(manifest.models)
    known = set(manifest.set_names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ManifestError(
            f"{manifest.source}: unknown model set(s) {', '.join(unknown)}; known sets: "
            f"{', '.join(sorted(known)) or '(none)'}, plus `{ALL_SET}` and `{NO_SET}`"
        )
    wanted = set(names)
    return [m for m in manifest.models if wanted & set(m.sets)]


def dump_model_manifest(entries: Iterable[ModelEntry] | Iterable[Mapping[str, Any]]) -> str:
    """YAML text of a manifest holding ``entries`` (plain mappings may carry a null sha256)."""
    import yaml

    models = [e.to_dict() if isinstance(e, ModelEntry) else dict(e) for e in entries]
    text: str = yaml.safe_dump({"version": 1, "models": models}, sort_keys=False, allow_unicode=True)
    return text
