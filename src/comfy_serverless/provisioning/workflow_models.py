"""Turn the model list an official ComfyUI workflow carries into manifest entries.

Workflows saved by the ComfyUI frontend (and the official templates) list the files they need in
each loader node's ``properties.models`` (``[{name, url, directory, hash?, hash_type?}]``), sometimes
also in a top-level ``models`` list, and inside subgraph definitions. API-format workflows carry no
such list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .folders import canonical_folder
from .manifest import SHA256_RE, ManifestError, ModelEntry, validate_model_name


@dataclass(frozen=True)
class WorkflowModel:
    """A model a workflow asks for; ``sha256`` is ``None`` when the workflow gives none."""

    name: str
    url: str
    folder: str
    sha256: str | None
    node: str  # where it was found, e.g. "node 38 (UNETLoader)"

    def to_entry(self, sets: Sequence[str] = (), token_env: str | None = None) -> ModelEntry:
        """The manifest entry; raises :class:`ManifestError` while the sha256 is unknown."""
        if self.sha256 is None:
            raise ManifestError(f"{self.folder}/{self.name} ({self.node}) has no sha256 yet")
        return ModelEntry(self.name, self.url, self.folder, self.sha256, tuple(sets), token_env)


def _iter_nodes(workflow: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for node in workflow.get("nodes") or []:
        if isinstance(node, Mapping):
            yield node
    definitions = workflow.get("definitions")
    if isinstance(definitions, Mapping):
        for subgraph in definitions.get("subgraphs") or []:
            if isinstance(subgraph, Mapping):
                yield from _iter_nodes(subgraph)


def _model_lists(workflow: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    top = workflow.get("models")
    if isinstance(top, list):
        yield "workflow `models`", top
    for node in _iter_nodes(workflow):
        properties = node.get("properties")
        models = properties.get("models") if isinstance(properties, Mapping) else None
        if isinstance(models, list):
            yield f"node {node.get('id', '?')} ({node.get('type', '?')})", models


def _sha256_of(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("hash") or raw.get("sha256")
    hash_type = str(raw.get("hash_type", "sha256")).lower().replace("-", "")
    if isinstance(value, str) and hash_type == "sha256" and SHA256_RE.match(value.strip().lower()):
        return value.strip().lower()
    return None


def models_from_workflow(workflow: Mapping[str, Any]) -> tuple[list[WorkflowModel], list[str]]:
    """Every model the workflow lists, de-duplicated, plus warnings about entries that were skipped.

    Raises :class:`ManifestError` if the workflow is in API format (no ``nodes`` list) or lists the
    same file twice with different URLs or hashes.
    """
    if "nodes" not in workflow and "models" not in workflow:
        raise ManifestError(
            "this looks like an API-format workflow (no `nodes`); only workflows saved from the ComfyUI "
            "editor or the official templates list their models in `properties.models`"
        )
    found: dict[tuple[str, str], WorkflowModel] = {}
    warnings: list[str] = []
    for where, models in _model_lists(workflow):
        for raw in models:
            if not isinstance(raw, Mapping):
                warnings.append(f"{where}: skipped a model entry that is not an object")
                continue
            name, url, directory = raw.get("name"), raw.get("url"), raw.get("directory")
            if not (isinstance(name, str) and isinstance(url, str) and isinstance(directory, str)):
                warnings.append(f"{where}: skipped {name!r}: it needs `name`, `url` and `directory`")
                continue
            try:
                validate_model_name(name, where)
            except ManifestError as exc:
                warnings.append(f"skipped: {exc}")
                continue
            folder = canonical_folder(directory) or directory
            if canonical_folder(directory) is None:
                warnings.append(
                    f"{where}: {name} goes to `{directory}`, a folder ComfyUI 0.8.0 does not know"
                )
            model = WorkflowModel(name, url, folder, _sha256_of(raw), where)
            key = (folder, name)
            previous = found.get(key)
            if previous is None:
                found[key] = model
                continue
            if previous.url != model.url:
                raise ManifestError(
                    f"{folder}/{name} is listed with two URLs: {previous.url} ({previous.node}) "
                    f"and {model.url} ({model.node})"
                )
            if model.sha256 and previous.sha256 and model.sha256 != previous.sha256:
                raise ManifestError(f"{folder}/{name} is listed with two different sha256 values")
            if previous.sha256 is None and model.sha256:
                found[key] = model
    return list(found.values()), warnings


def models_from_template(manifest: Mapping[str, Any], where: str) -> list[WorkflowModel]:
    """The ``models`` a template manifest (``workflows/<name>.yaml``) lists: ``{name, folder, url, sha256?}``."""
    models: list[WorkflowModel] = []
    for index, raw in enumerate(manifest.get("models") or []):
        at = f"{where}: models[{index}]"
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{at} must be a mapping with name, folder and url")
        name, folder, url = raw.get("name"), raw.get("folder"), raw.get("url")
        if not (isinstance(name, str) and isinstance(folder, str) and isinstance(url, str)):
            raise ManifestError(f"{at} needs `name`, `folder` and `url` to be baked into an image")
        validate_model_name(name, at)
        sha = raw.get("sha256")
        models.append(
            WorkflowModel(
                name, url, canonical_folder(folder) or folder, sha if isinstance(sha, str) else None, at
            )
        )
    return models
