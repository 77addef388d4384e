"""Custom-node manifest, comfy-cli commands, and the checks that make a failed install fail the build."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from comfy_serverless.provisioning import (
    GitNode,
    ManifestError,
    NodeInstallError,
    RegistryNode,
    install_nodes,
)
from comfy_serverless.provisioning.nodes import (
    CommandResult,
    check_node_imports,
    install_commands,
    load_node_manifest,
    parse_node_manifest,
    verify_installed,
)

from .conftest import REPO

COMMIT = "4ee72c065db22c9d96c2427954dc69e7b908444b"


def test_manifest_entries_and_commands(tmp_path: Path) -> None:
    entries = parse_node_manifest(
        {
            "nodes": [
                {"repo": "https://github.com/acme/ComfyUI-Thing.git", "commit": COMMIT.upper()},
                {"registry": "comfyui-kjnodes", "version": "1.1.7"},
            ]
        }
    )
    git, reg = entries
    assert isinstance(git, GitNode) and git.commit == COMMIT and git.directory_name == "ComfyUI-Thing"
    assert isinstance(reg, RegistryNode)
    ws = tmp_path / "comfyui"
    target = str(ws / "custom_nodes" / "ComfyUI-Thing")
    git_steps = install_commands(git, ws, "/opt/comfy-cli/bin/comfy")
    # cm-cli cannot install a git URL at a commit, so git pins the commit and comfy-cli installs
    # the requirements of exactly that checkout.
    assert git_steps[0] == ["git", "clone", "--quiet", "--no-checkout", "--", git.repo, target]
    assert git_steps[1][-2:] == ["--detach", COMMIT]
    assert git_steps[-1] == [
        "/opt/comfy-cli/bin/comfy",
        "--workspace",
        str(ws),
        "--skip-prompt",
        "node",
        "fix",
        "ComfyUI-Thing",
    ]
    registry_install = ["node", "install", "--exit-on-fail", "--mode", "remote", "comfyui-kjnodes@1.1.7"]
    assert install_commands(reg, ws) == [
        ["comfy", "--workspace", str(ws), "--skip-prompt", *registry_install]
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"repo": "https://github.com/a/b", "commit": "main"}, "commit hash"),
        ({"repo": "not a url", "commit": COMMIT}, "git URL"),
        ({"registry": "comfyui-kjnodes", "version": "latest"}, "published version"),
        ({"registry": "comfyui-kjnodes"}, "either `repo` \\+ `commit` or `registry` \\+ `version`"),
        ({"repo": "https://github.com/a/b", "commit": COMMIT, "version": "1"}, "either"),
    ],
)
def test_unpinned_or_malformed_entries_are_rejected(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_node_manifest({"nodes": [raw]}, "nodes.yaml")


def test_two_entries_for_one_folder_are_rejected() -> None:
    with pytest.raises(ManifestError, match="custom_nodes/b"):
        parse_node_manifest(
            {
                "nodes": [
                    {"repo": "https://github.com/a/b", "commit": COMMIT},
                    {"registry": "b", "version": "1.0.0"},
                ]
            }
        )


def test_shipped_node_manifests_load() -> None:
    assert load_node_manifest(REPO / "docker" / "manifests" / "custom-nodes.yaml") == []
    ltx = load_node_manifest(REPO / "docker" / "manifests" / "custom-nodes.ltx2.yaml")
    assert {type(e) for e in ltx} == {GitNode, RegistryNode}


_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, env=_GIT_ENV)
    return done.stdout.strip()


def _node_repo(path: Path, versions: int = 2) -> list[str]:
    """A real git repository of a custom node with ``versions`` commits; returns their hashes, oldest first."""
    path.mkdir(parents=True)
    _git("init", "-q", "-b", "main", str(path))
    commits = []
    for n in range(versions):
        (path / "__init__.py").write_text(f"VERSION = {n}\nNODE_CLASS_MAPPINGS = {{}}\n")
        (path / "requirements.txt").write_text(f"tomli==2.{n}.0\n")
        _git("-C", str(path), "add", ".")
        _git("-C", str(path), "commit", "-q", "-m", f"v{n}")
        commits.append(_git("-C", str(path), "rev-parse", "HEAD"))
    return commits


class FakeComfyCli:
    """Runs git for real and plays comfy-cli: records what `node fix` would install, or misbehaves.

    The outputs are what comfy-cli 1.23.0 with ComfyUI-Manager 4.3 printed inside the image build,
    where both exit 0 on these failures.
    """

    def __init__(self, workspace: Path, behaviour: str = "ok") -> None:
        self.custom_nodes = workspace / "custom_nodes"
        self.behaviour = behaviour
        self.calls: list[list[str]] = []
        self.fixed_requirements: dict[str, str] = {}

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        if argv[0] == "git":
            done = subprocess.run(list(argv), capture_output=True, text=True, env=_GIT_ENV)
            return CommandResult(done.returncode, done.stdout + done.stderr)
        if self.behaviour == "exit1":
            return CommandResult(1, "Traceback ...\nERROR: boom\n")
        if argv[-2] == "fix":
            name = argv[-1]
            if self.behaviour == "failed-requirements":
                return CommandResult(
                    0,
                    "subprocess.CalledProcessError: Command '['/opt/comfy/bin/python', '-m', 'pip', 'install', "
                    f"'nope==9.9']' returned non-zero exit status 1.\n\nFailed nodes (1/1): {name}\n",
                )
            if not (self.custom_nodes / name).is_dir():
                return CommandResult(0, f"1/1 [  SKIPPED  ]: {name}    => Not installed\n")
            self.fixed_requirements[name] = (self.custom_nodes / name / "requirements.txt").read_text()
            return CommandResult(0, f"1/1 [   FIXING  ]: {name}\nInstall: pip packages\n")
        node_id, version = argv[-1].split("@")
        if self.behaviour == "nothing":
            return CommandResult(0, "install_node exit on fail:True...\n")
        if self.behaviour == "versions-listed":
            return CommandResult(0, f"Available version of '{node_id}'\n  1.0.0\n")
        target = self.custom_nodes / node_id
        target.mkdir(parents=True)
        shown = "0.0.1" if self.behaviour == "wrong-version" else version
        (target / "pyproject.toml").write_text(f'[project]\nname = "{node_id}"\nversion = "{shown}"\n')
        return CommandResult(0, f"[INSTALLED] {node_id} [{version}]\n")


def test_git_nodes_are_checked_out_at_the_pinned_commit_then_fixed_by_comfy_cli(tmp_path: Path) -> None:
    first, latest = _node_repo(tmp_path / "src" / "ComfyUI-Thing")
    ws = tmp_path / "comfyui"
    fake = FakeComfyCli(ws)
    entries = [
        GitNode(f"file://{tmp_path}/src/ComfyUI-Thing", first[:10]),
        RegistryNode("comfyui-kjnodes", "1.1.7"),
    ]
    labels = install_nodes(entries, ws, comfy="comfy", runner=fake)
    assert labels == [f"file://{tmp_path}/src/ComfyUI-Thing@{first[:10]}", "comfyui-kjnodes@1.1.7"]
    node = ws / "custom_nodes" / "ComfyUI-Thing"
    # The older commit, not the branch tip, is on disk, and its requirements are the ones installed.
    assert _git("-C", str(node), "rev-parse", "HEAD") == first != latest
    assert "VERSION = 0" in (node / "__init__.py").read_text()
    assert fake.fixed_requirements == {"ComfyUI-Thing": "tomli==2.0.0\n"}
    assert (ws / "custom_nodes" / "comfyui-kjnodes" / "pyproject.toml").is_file()


@pytest.mark.parametrize(
    ("behaviour", "entry_kind", "message"),
    [
        ("exit1", "registry", "comfy exited with status 1"),
        ("nothing", "registry", "expected custom_nodes/comfyui-kjnodes, found nothing"),
        ("versions-listed", "registry", "Available version of"),
        ("wrong-version", "registry", "has version 0.0.1, not 1.1.7"),
        ("failed-requirements", "git", "Failed nodes \\(1/1\\): ComfyUI-Thing"),
        ("unknown-commit", "git", "git exited with status 128"),
        ("missing-repo", "git", "git exited with status 128"),
    ],
)
def test_failed_installs_fail_with_a_clear_message(
    tmp_path: Path, behaviour: str, entry_kind: str, message: str
) -> None:
    commits = _node_repo(tmp_path / "src" / "ComfyUI-Thing")
    repo = f"file://{tmp_path}/src/{'Gone' if behaviour == 'missing-repo' else 'ComfyUI-Thing'}"
    commit = "0123456789abcdef" if behaviour == "unknown-commit" else commits[0]
    entry: GitNode | RegistryNode = (
        GitNode(repo, commit) if entry_kind == "git" else RegistryNode("comfyui-kjnodes", "1.1.7")
    )
    ws = tmp_path / "comfyui"
    with pytest.raises(NodeInstallError, match=message) as err:
        install_nodes([entry], ws, runner=FakeComfyCli(ws, behaviour))
    text = str(err.value)
    assert entry.label in text and "command: " in text and "rebuild" in text


def test_verify_reads_a_real_git_head(tmp_path: Path) -> None:
    first, latest = _node_repo(tmp_path / "custom_nodes" / "ComfyUI-Thing")
    thing = "https://github.com/acme/ComfyUI-Thing"
    assert verify_installed(GitNode(thing, latest[:10]), tmp_path / "custom_nodes") is None
    problem = verify_installed(GitNode(thing, first), tmp_path / "custom_nodes")
    assert problem is not None and f"at commit {latest[:12]}, not {first}" in problem
    (tmp_path / "custom_nodes" / "Plain").mkdir()
    problem = verify_installed(GitNode("https://github.com/acme/Plain", first), tmp_path / "custom_nodes")
    assert problem is not None and "not a git checkout" in problem


BOOT_OK = """\
Total VRAM 24217 MB, total RAM 64000 MB
Import times for custom nodes:
   0.0 seconds: /comfyui/custom_nodes/websocket_image_save.py
   0.4 seconds: /comfyui/custom_nodes/ComfyUI-Thing

"""
BOOT_FAILED = """\
Traceback (most recent call last):
ModuleNotFoundError: No module named 'cv2'
Cannot import /comfyui/custom_nodes/ComfyUI-Broken module for custom nodes: No module named 'cv2'
Import times for custom nodes:
   0.0 seconds: /comfyui/custom_nodes/websocket_image_save.py
   0.1 seconds (IMPORT FAILED): /comfyui/custom_nodes/ComfyUI-Broken

"""


def test_import_check_boots_comfyui_on_cpu_and_fails_on_import_errors(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def runner(argv: Sequence[str]) -> CommandResult:
        seen.append(list(argv))
        return CommandResult(0, BOOT_OK)

    report = check_node_imports(tmp_path, "/opt/comfy/bin/python", runner=runner)
    assert [n.name for n in report.loaded] == ["websocket_image_save.py", "ComfyUI-Thing"]
    argv = seen[0]
    assert argv[:2] == ["/opt/comfy/bin/python", str(tmp_path / "main.py")]
    assert "--cpu" in argv and "--quick-test-for-ci" in argv
    assert not any(
        str(tmp_path) in a for a in argv[argv.index("--user-directory") :]
    )  # scratch, not the image

    with pytest.raises(NodeInstallError, match=r"ComfyUI-Broken: No module named 'cv2'"):
        check_node_imports(tmp_path, "python", runner=lambda argv: CommandResult(0, BOOT_FAILED))
    with pytest.raises(NodeInstallError, match="exited with status 1"):
        check_node_imports(tmp_path, "python", runner=lambda argv: CommandResult(1, "Traceback\n"))


def test_import_check_against_a_real_comfyui(tmp_path: Path) -> None:
    """The build's import test, run for real: a good node loads, a broken one fails the check by name."""
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if not comfyui_dir:
        pytest.skip("real ComfyUI not configured: set COMFYUI_DIR (and COMFYUI_PYTHON) to run this test")
    python = os.environ.get("COMFYUI_PYTHON") or "python3"
    nodes = tmp_path / "nodes"
    (nodes / "GoodThing").mkdir(parents=True)
    (nodes / "GoodThing" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (nodes / "BrokenThing").mkdir()
    (nodes / "BrokenThing" / "__init__.py").write_text("import module_that_is_not_installed\n")
    paths = tmp_path / "extra_model_paths.yaml"
    paths.write_text(f"check:\n  custom_nodes: {nodes}\n")
    extra = ["--extra-model-paths-config", str(paths)]

    with pytest.raises(NodeInstallError, match="BrokenThing: No module named 'module_that_is_not_installed'"):
        check_node_imports(Path(comfyui_dir), python, extra_args=extra)

    shutil.rmtree(nodes / "BrokenThing")
    report = check_node_imports(Path(comfyui_dir), python, extra_args=extra)
    assert "GoodThing" in [n.name for n in report.loaded] and not report.failed
