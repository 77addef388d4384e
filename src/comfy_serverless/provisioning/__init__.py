"""Provisioning: what goes into the image and what the worker finds at start.

Model manifests and sha256-verified downloads, workflow ``properties.models`` conversion, pinned
custom-node installs through comfy-cli, the network-volume layout diagnosis, context for "model not
in list" errors, and the start-up summary. Nothing here imports torch.
"""

from __future__ import annotations

from .download import ChecksumMismatch, DownloadError, FetchResult, fetch_model, fetch_models, sha256_file
from .folders import (
    COMFYUI_FOLDERS,
    DEFAULT_VOLUME_ROOT,
    LOADER_INPUTS,
    MODEL_FOLDERS,
    NEWER_COMFYUI_FOLDERS,
    ModelSearchPaths,
    folder_for_input,
    read_extra_model_paths,
    render_extra_model_paths,
)
from .manifest import ManifestError, ModelEntry, ModelManifest, load_model_manifest, select_models
from .nodes import GitNode, NodeInstallError, RegistryNode, install_nodes, load_node_manifest
from .summary import CustomNode, CustomNodeReport, build_startup_summary, parse_custom_node_log
from .volume import (
    FolderCount,
    VolumeLayout,
    VolumeReport,
    count_model_files,
    diagnose_volume,
    explain_missing_model,
)
from .workflow_models import WorkflowModel, models_from_workflow

__all__ = [
    "COMFYUI_FOLDERS",
    "DEFAULT_VOLUME_ROOT",
    "LOADER_INPUTS",
    "MODEL_FOLDERS",
    "NEWER_COMFYUI_FOLDERS",
    "ChecksumMismatch",
    "CustomNode",
    "CustomNodeReport",
    "DownloadError",
    "FetchResult",
    "FolderCount",
    "GitNode",
    "ManifestError",
    "ModelEntry",
    "ModelManifest",
    "ModelSearchPaths",
    "NodeInstallError",
    "RegistryNode",
    "VolumeLayout",
    "VolumeReport",
    "WorkflowModel",
    "build_startup_summary",
    "count_model_files",
    "diagnose_volume",
    "explain_missing_model",
    "fetch_model",
    "fetch_models",
    "folder_for_input",
    "install_nodes",
    "load_model_manifest",
    "load_node_manifest",
    "models_from_workflow",
    "parse_custom_node_log",
    "read_extra_model_paths",
    "render_extra_model_paths",
    "select_models",
    "sha256_file",
]
