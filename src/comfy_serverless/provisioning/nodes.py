"""Custom nodes from a manifest, installed with comfy-cli, pinned and verified.

A node manifest is YAML or JSON::

    version: 1
    nodes:
      - repo: https://github.com/kijai/ComfyUI-KJNodes   # a git repository at one commit
        commit: 4f5bd7c4d0e1...                          # full (or at least 7-digit) commit hash
      - registry: comfyui-videohelpersuite               # or a Comfy registry id at one version
        version: 1.7.9

A git entry is cloned with git and checked out at its commit, then ``comfy node fix`` (comfy-cli
driving ComfyUI-Manager's cm-cli) installs its requirements and runs its install script. cm-cli
cannot install a git URL at a commit: it clones the default branch, or, when the repository is
published in the Comfy registry, installs the registry release instead. A registry entry is
installed with ``comfy node install --mode remote <id>@<version>``.

comfy-cli's exit status is not enough to trust an install: cm-cli prints "Failed nodes" or an
install-script error and comfy-cli still exits 0. So the output is scanned for those markers, every
install is checked afterwards on disk (the folder exists, the git HEAD is the commit, the registry
package has the version), and a final import test boots ComfyUI on the CPU with
``--quick-test-for-ci`` and fails on any ``(IMPORT FAILED)`` line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .manifest import ManifestError, _load_document
from .summary import CustomNodeReport, parse_custom_node_log

_COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
_REGISTRY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$", re.IGNORECASE)
_VERSION_RE = re.compile(r"^\d+(\.\d+)*([.-]?[A-Za-z0-9]+)*$")
_FAILURE_MARKERS = (
    "An error occurred while installing",
    "Install(git-clone) error",
    "install script failed:",  # cm-cli prints this when a node's pip requirements fail, then exits 0
    "Available version of",  # cm-cli lists versions instead of installing an unknown one
    "Failed nodes (",  # `cm-cli fix` after a failed requirement install; comfy-cli still exits 0
    "=> Not installed",  # `cm-cli fix` did not find the folder it was asked to fix
)


class NodeInstallError(RuntimeError):
    """A custom node did not install as pinned; the message says which, how it failed, and what to do."""


@dataclass(frozen=True)
class GitNode:
    """A custom node pinned to one commit of a git repository."""

    repo: str
    commit: str

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.commit[:12]}"

    @property
    def directory_name(self) -> str:
        name = urlparse(self.repo).path.rstrip("/").rsplit("/", 1)[-1]
        return name[:-4] if name.endswith(".git") else name


@dataclass(frozen=True)
class RegistryNode:
    """A custom node pinned to one version of the Comfy registry."""

    node_id: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.node_id}@{self.version}"

    @property
    def directory_name(self) -> str:
        return self.node_id


NodeEntry = GitNode | RegistryNode


def parse_node_manifest(data: Any, source: str = "<manifest>") -> list[NodeEntry]:
    """Validate a decoded node manifest; raise :class:`ManifestError` naming the bad entry."""
    if isinstance(data, list):
        data = {"nodes": data}
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source}: expected a mapping with a `nodes` list")
    if data.get("version", 1) != 1:
        raise ManifestError(f"{source}: unsupported manifest version {data.get('version')!r}")
    raw_nodes = data.get("nodes") or []
    if not isinstance(raw_nodes, list):
        raise ManifestError(f"{source}: `nodes` must be a list")
    entries: list[NodeEntry] = []
    for index, raw in enumerate(raw_nodes):
        where = f"{source}: nodes[{index}]"
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{where}: expected a mapping")
        keys = set(raw)
        if keys == {"repo", "commit"}:
            repo, commit = raw["repo"], str(raw["commit"]).strip().lower()
            parsed = urlparse(repo) if isinstance(repo, str) else None
            if (
                parsed is None
                or parsed.scheme not in ("https", "http", "ssh", "git", "file")
                or not parsed.path.strip("/")
            ):
                raise ManifestError(
                    f"{where}: `repo` must be a git URL such as https://github.com/owner/name"
                )
            if not _COMMIT_RE.match(commit):
                raise ManifestError(
                    f"{where}: `commit` must be a commit hash (7 to 40 hex digits), got {raw['commit']!r}; "
                    "branches and tags move, so they are not accepted"
                )
            entries.append(GitNode(repo.rstrip("/"), commit))
        elif keys == {"registry", "version"}:
            node_id, version = raw["registry"], str(raw["version"]).strip()
            if not isinstance(node_id, str) or not _REGISTRY_ID_RE.match(node_id):
                raise ManifestError(
                    f"{where}: `registry` must be a Comfy registry id such as comfyui-kjnodes"
                )
            if version in ("latest", "nightly") or not _VERSION_RE.match(version):
                raise ManifestError(
                    f"{where}: `version` must be a published version such as 1.2.3, got {version!r}"
                )
            entries.append(RegistryNode(node_id, version))
        else:
            raise ManifestError(
                f"{where}: give either `repo` + `commit` or `registry` + `version`, got keys {sorted(keys)}"
            )
    seen: set[str] = set()
    for entry in entries:
        if entry.directory_name.lower() in seen:
            raise ManifestError(f"{source}: two entries install into custom_nodes/{entry.directory_name}")
        seen.add(entry.directory_name.lower())
    return entries


def load_node_manifest(path: Path) -> list[NodeEntry]:
    """Read and validate a custom-node manifest file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read node manifest {path}: {exc.strerror or exc}") from exc
    return parse_node_manifest(_load_document(text, str(path)), str(path))


def install_commands(entry: NodeEntry, workspace: Path, comfy: str = "comfy") -> list[list[str]]:
    """The command lines that install ``entry`` into ``workspace``, to run in order."""
    cli = [comfy, "--workspace", str(workspace), "--skip-prompt", "node"]
    if isinstance(entry, GitNode):
        target = str(workspace / "custom_nodes" / entry.directory_name)
        return [
            ["git", "clone", "--quiet", "--no-checkout", "--", entry.repo, target],
            [
                "git",
                "-C",
                target,
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                "--detach",
                entry.commit,
            ],
            ["git", "-C", target, "submodule", "update", "--init", "--recursive", "--quiet"],
            [*cli, "fix", entry.directory_name],
        ]
    return [[*cli, "install", "--exit-on-fail", "--mode", "remote", f"{entry.node_id}@{entry.version}"]]


def _git_head(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().lower() or None


def _registry_version(path: Path) -> str | None:
    try:
        data = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = data.get("project", {}).get("version")
    return str(version) if version is not None else None


def verify_installed(
    entry: NodeEntry,
    custom_nodes: Path,
    new_dirs: Sequence[str] = (),
    git_head: Callable[[Path], str | None] = _git_head,
) -> str | None:
    """``None`` if ``entry`` sits in ``custom_nodes`` as pinned, else what is wrong and how to fix it."""
    target = custom_nodes / entry.directory_name
    if not target.is_dir():
        return f"expected custom_nodes/{entry.directory_name}, found {', '.join(new_dirs) or 'nothing'}"
    if isinstance(entry, GitNode):
        head = git_head(target)
        if head is None:
            return f"custom_nodes/{entry.directory_name} is not a git checkout, so commit {entry.commit} cannot be confirmed"
        if not head.startswith(entry.commit):
            return f"custom_nodes/{entry.directory_name} is at commit {head[:12]}, not {entry.commit}"
        return None
    installed = _registry_version(target)
    if installed is not None and installed != entry.version:
        return f"custom_nodes/{entry.directory_name} has version {installed}, not {entry.version}"
    return None


@dataclass(frozen=True)
class CommandResult:
    """Exit status and combined output of one command."""

    returncode: int
    output: str


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run ``argv``, echo its output as it comes (build logs), and keep it for diagnosis."""
    lines: list[str] = []
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            sys.stderr.write(line)
        returncode = proc.wait()
    return CommandResult(returncode, "".join(lines))


def _failure_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if any(m in line for m in _FAILURE_MARKERS)]


def _listing(custom_nodes: Path) -> set[str]:
    if not custom_nodes.is_dir():
        return set()
    return {p.name for p in custom_nodes.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def install_nodes(
    entries: Sequence[NodeEntry],
    workspace: Path,
    *,
    comfy: str = "comfy",
    runner: Runner = run_command,
    git_head: Callable[[Path], str | None] = _git_head,
) -> list[str]:
    """Install ``entries`` one by one and return their labels.

    Raises :class:`NodeInstallError` at the first entry that fails or does not verify.
    """
    custom_nodes = workspace / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    installed: list[str] = []
    for index, entry in enumerate(entries, start=1):
        before = _listing(custom_nodes)
        problem: str | None = None
        argv: Sequence[str] = ()
        output = ""
        for argv in install_commands(entry, workspace, comfy):
            result = runner(argv)
            output = result.output
            if result.returncode != 0:
                problem = f"{Path(argv[0]).name} exited with status {result.returncode}"
            elif markers := _failure_lines(result.output):
                problem = "comfy-cli reported: " + " | ".join(markers[:3])
            if problem is not None:
                break
        if problem is None:
            new_dirs = sorted(_listing(custom_nodes) - before)
            problem = verify_installed(entry, custom_nodes, new_dirs, git_head)
        if problem is not None:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise NodeInstallError(
                f"custom node {index}/{len(entries)} {entry.label} failed to install: {problem}\n"
                f"command: {' '.join(argv)}\n"
                f"last output lines:\n{tail}\n"
                "Fix the entry in the node manifest (check the repository URL and commit, or the registry id "
                "and version at https://registry.comfy.org), then rebuild."
            )
        installed.append(entry.label)
    return installed


def check_node_imports(
    comfyui_dir: Path,
    python: str,
    *,
    extra_args: Sequence[str] = (),
    runner: Runner = run_command,
) -> CustomNodeReport:
    """Boot ComfyUI once on the CPU (``--quick-test-for-ci``) and fail if any custom node cannot import.

    Runs in a throw-away user/input/output/temp folder so the image is left as it was.
    """
    with tempfile.TemporaryDirectory(prefix="comfy-node-check-") as scratch:
        base = Path(scratch)
        for name in ("user", "input", "output", "temp"):
            (base / name).mkdir()  # ComfyUI refuses a --user-directory that does not exist
        argv = [
            python,
            str(comfyui_dir / "main.py"),
            "--cpu",
            "--quick-test-for-ci",
            "--disable-auto-launch",
            "--user-directory",
            str(base / "user"),
            "--input-directory",
            str(base / "input"),
            "--output-directory",
            str(base / "output"),
            "--temp-directory",
            str(base / "temp"),
            *extra_args,
        ]
        result = runner(argv)
    report = parse_custom_node_log(result.output.splitlines())
    if report.failed:
        failed = "\n".join(f"  - {n.name}: {n.error or 'see the traceback above'}" for n in report.failed)
        raise NodeInstallError(
            f"ComfyUI import test: {len(report.failed)} custom node(s) failed to import:\n{failed}\n"
            "A node's Python dependencies are usually missing or clash with the pinned ones; "
            "pin another commit/version or add the dependency, then rebuild."
        )
    if result.returncode != 0:
        tail = "\n".join(result.output.strip().splitlines()[-10:])
        raise NodeInstallError(
            f"ComfyUI import test exited with status {result.returncode} before reporting its custom nodes; "
            f"its last output lines:\n{tail}"
        )
    return report


def node_manifest_json(entries: Sequence[NodeEntry]) -> str:
    """A JSON record of the pinned nodes (written into the image for the start-up log and audits)."""
    records: list[dict[str, str]] = []
    for entry in entries:
        if isinstance(entry, GitNode):
            records.append({"repo": entry.repo, "commit": entry.commit, "directory": entry.directory_name})
        else:
            records.append(
                {"registry": entry.node_id, "version": entry.version, "directory": entry.directory_name}
            )
    return json.dumps({"version": 1, "nodes": records}, indent=2) + "\n"
