"""Command line used by the Dockerfiles and by users: ``python -m comfy_serverless.provisioning``.

Subcommands: ``fetch-models``, ``models-from-workflow``, ``install-nodes``, ``check-nodes``,
``check-volume`` and ``model-paths``. Output goes to stdout, progress and errors to stderr; a failure
exits with status 1 and one readable message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .download import DownloadError, fetch_models, remote_sha256, url_sha256
from .folders import DEFAULT_VOLUME_ROOT, ModelSearchPaths, render_extra_model_paths
from .manifest import ManifestError, dump_model_manifest, load_model_manifest, select_models
from .nodes import NodeInstallError, check_node_imports, install_nodes, load_node_manifest, node_manifest_json
from .volume import count_model_files, diagnose_volume
from .workflow_models import WorkflowModel, models_from_template, models_from_workflow

log = logging.getLogger("comfy_serverless.provisioning")


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _cmd_fetch_models(args: argparse.Namespace) -> int:
    manifest = load_model_manifest(args.manifest)
    for warning in manifest.warnings:
        log.warning("%s", warning)
    entries = select_models(manifest, args.set)
    if not entries:
        log.info("model set %r selects no model; nothing to fetch", args.set)
        return 0
    results = fetch_models(
        entries,
        args.dest,
        cache_dir=args.cache_dir,
        secrets_dir=args.secrets_dir,
        retries=args.retries,
    )
    for result in results:
        _out(f"{result.status:<10} {result.size:>14,d}  {result.path}")
    return 0


def _resolve_hash(model: WorkflowModel, args: argparse.Namespace) -> WorkflowModel:
    """Fill in a missing sha256 from the server's headers or by streaming the file once."""
    if model.sha256 is not None:
        return model
    token = os.environ.get(args.token_env, "").strip() or None if args.token_env else None
    sha: str | None = None
    if args.resolve_hashes:
        sha = remote_sha256(model.url, token)
    if sha is None and args.compute_hashes:
        log.info("streaming %s once to compute its sha256", model.url)
        sha, _size = url_sha256(model.url, token)
    if sha is None:
        return model
    return WorkflowModel(model.name, model.url, model.folder, sha, model.node)


def _cmd_models_from_workflow(args: argparse.Namespace) -> int:
    collected: dict[tuple[str, str], WorkflowModel] = {}
    for path in args.workflows:
        if Path(path).suffix.lower() in (".yaml", ".yml"):
            # A template manifest (workflows/<name>.yaml) lists its models itself.
            import yaml

            try:
                template = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ManifestError(f"cannot read template manifest {path}: {exc}") from exc
            if not isinstance(template, dict):
                raise ManifestError(f"{path}: a template manifest must be a mapping")
            for model in models_from_template(template, str(path)):
                collected.setdefault((model.folder, model.name), model)
            continue
        try:
            workflow = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"cannot read workflow {path}: {exc}") from exc
        if not isinstance(workflow, dict):
            raise ManifestError(f"{path}: a workflow must be a JSON object")
        models, warnings = models_from_workflow(workflow)
        for warning in warnings:
            log.warning("%s: %s", path, warning)
        for model in models:
            collected.setdefault((model.folder, model.name), model)
    resolved = [_resolve_hash(m, args) for m in collected.values()]
    missing = [m for m in resolved if m.sha256 is None]
    if missing and not args.allow_missing_hashes:
        names = "\n".join(f"  {m.folder}/{m.name}  {m.url}" for m in missing)
        raise ManifestError(
            f"no sha256 known for {len(missing)} model(s):\n{names}\n"
            "Add --resolve-hashes (asks the server, e.g. Hugging Face, without downloading), "
            "--compute-hashes (downloads each file once), or --allow-missing-hashes to write them "
            "with `sha256: null` for you to fill in (the build refuses them until then)."
        )
    sets = [args.set] if args.set else []
    rows: list[dict[str, object]] = []
    for model in resolved:
        if model.sha256 is None:
            rows.append(
                {
                    "name": model.name,
                    "url": model.url,
                    "folder": model.folder,
                    "sha256": None,
                    **({"sets": list(sets)} if sets else {}),
                    **({"token_env": args.token_env} if args.token_env else {}),
                }
            )
        else:
            rows.append(model.to_entry(list(sets), args.token_env).to_dict())
    text = dump_model_manifest(rows)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        log.info("wrote %d model(s) to %s", len(rows), args.output)
    else:
        _out(text)
    return 0


def _cmd_install_nodes(args: argparse.Namespace) -> int:
    entries = load_node_manifest(args.manifest)
    if entries:
        for label in install_nodes(entries, args.workspace, comfy=args.comfy):
            _out(f"installed  {label}")
    else:
        log.info("node manifest %s lists no custom node", args.manifest)
    if args.record:
        Path(args.record).write_text(node_manifest_json(entries), encoding="utf-8")
    if args.check_imports and entries:
        _report_imports(args.workspace, args.python)
    return 0


def _report_imports(workspace: Path, python: str) -> None:
    report = check_node_imports(workspace, python)
    for node in report.loaded:
        _out(f"imported   {node.name} ({node.seconds:.1f} s)")


def _cmd_check_nodes(args: argparse.Namespace) -> int:
    _report_imports(args.workspace, args.python)
    return 0


def _cmd_check_volume(args: argparse.Namespace) -> int:
    report = diagnose_volume(args.volume)
    _out(report.render())
    comfy_models = args.comfyui_dir / "models" if args.comfyui_dir else None
    counts = count_model_files(ModelSearchPaths(comfy_models, args.volume))
    if counts:
        _out("Model folders (files ComfyUI lists):")
        for count in counts:
            _out(f"  {count.folder:<22} {count.files:>5}  {count.path}")
    return 1 if args.strict and not report.ok else 0


def _cmd_model_paths(args: argparse.Namespace) -> int:
    text = render_extra_model_paths(args.volume)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        _out(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    comfyui_dir = os.environ.get("COMFYUI_DIR") or "/comfyui"
    parser = argparse.ArgumentParser(
        prog="python -m comfy_serverless.provisioning", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch-models", help="download a manifest's models, verified by sha256")
    p.add_argument("--manifest", type=Path, required=True, help="model manifest (.yaml/.yml/.json)")
    p.add_argument(
        "--set",
        default=os.environ.get("MODEL_SET", "all"),
        help="named set(s), comma-separated; `all` or `none` (default: $MODEL_SET or all)",
    )
    p.add_argument(
        "--dest",
        type=Path,
        default=Path(comfyui_dir) / "models",
        help="models root receiving <folder>/<name> (default: $COMFYUI_DIR/models)",
    )
    p.add_argument(
        "--cache-dir", type=Path, help="keep verified downloads here by sha256 (a build cache mount)"
    )
    p.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path("/run/secrets"),
        help="where build secrets named by `token_env` are mounted (default: /run/secrets)",
    )
    p.add_argument("--retries", type=int, default=4, help="retries per file on network errors (default: 4)")
    p.set_defaults(func=_cmd_fetch_models)

    p = sub.add_parser(
        "models-from-workflow", help="turn a workflow's properties.models into manifest entries"
    )
    p.add_argument(
        "workflows",
        nargs="+",
        type=Path,
        help="workflow .json files saved from the ComfyUI editor, or template manifests (workflows/<name>.yaml)",
    )
    p.add_argument("--set", help="put every entry in this named set")
    p.add_argument(
        "--token-env", help="environment variable holding a token for gated downloads (e.g. HF_TOKEN)"
    )
    p.add_argument(
        "--resolve-hashes", action="store_true", help="ask the server for each sha256 (HEAD request)"
    )
    p.add_argument(
        "--compute-hashes", action="store_true", help="download files whose sha256 is still unknown"
    )
    p.add_argument("--allow-missing-hashes", action="store_true", help="write unknown hashes as null")
    p.add_argument("--output", "-o", help="write the manifest here instead of stdout")
    p.set_defaults(func=_cmd_models_from_workflow)

    python_default = os.environ.get("COMFYUI_PYTHON") or sys.executable
    p = sub.add_parser(
        "install-nodes", help="install a node manifest's custom nodes with comfy-cli, verified"
    )
    p.add_argument("--manifest", type=Path, required=True, help="custom-node manifest (.yaml/.yml/.json)")
    p.add_argument(
        "--workspace", type=Path, default=Path(comfyui_dir), help="ComfyUI checkout (default: $COMFYUI_DIR)"
    )
    p.add_argument("--comfy", default="comfy", help="comfy-cli executable (default: comfy)")
    p.add_argument("--python", default=python_default, help="ComfyUI's Python, for the import test")
    p.add_argument(
        "--no-check-imports",
        dest="check_imports",
        action="store_false",
        help="skip booting ComfyUI once to prove the nodes import",
    )
    p.add_argument("--record", type=Path, help="write the pinned node list as JSON here")
    p.set_defaults(func=_cmd_install_nodes)

    p = sub.add_parser(
        "check-nodes", help="boot ComfyUI once on the CPU and fail on any custom node import error"
    )
    p.add_argument(
        "--workspace", type=Path, default=Path(comfyui_dir), help="ComfyUI checkout (default: $COMFYUI_DIR)"
    )
    p.add_argument("--python", default=python_default, help="ComfyUI's Python (default: $COMFYUI_PYTHON)")
    p.set_defaults(func=_cmd_check_nodes)

    volume_default = _env_path("RUNPOD_VOLUME_PATH", str(DEFAULT_VOLUME_ROOT))
    p = sub.add_parser("check-volume", help="diagnose a network volume's model layout")
    p.add_argument(
        "--volume", type=Path, default=volume_default, help="volume root (default: $RUNPOD_VOLUME_PATH)"
    )
    p.add_argument(
        "--comfyui-dir", type=Path, default=None, help="also count the image's models in <dir>/models"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when models are hidden from ComfyUI")
    p.set_defaults(func=_cmd_check_volume)

    p = sub.add_parser("model-paths", help="write the extra_model_paths.yaml for a volume root")
    p.add_argument(
        "--volume", type=Path, default=volume_default, help="volume root (default: $RUNPOD_VOLUME_PATH)"
    )
    p.add_argument("--output", "-o", help="write here instead of stdout")
    p.set_defaults(func=_cmd_model_paths)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        status: int = args.func(args)
    except (ManifestError, DownloadError, NodeInstallError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return status
