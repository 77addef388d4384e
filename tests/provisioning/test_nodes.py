"""Custom-node manifest, comfy-cli commands, and the checks that make a failed install fail the build."""

from __future__ import annotations

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
    install_command,
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
    assert install_command(git, ws, "/opt/comfy-cli/bin/comfy") == [
        "/opt/comfy-cli/bin/comfy",
        "--workspace",
        str(ws),
        "--skip-prompt",
        "node",
        "install",
        "--exit-on-fail",
        f"https://github.com/acme/ComfyUI-Thing.git@{COMMIT}",
    ]
    assert install_command(reg, ws)[-3:] == ["--mode", "remote", "comfyui-kjnodes@1.1.7"]


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


class FakeComfyCli:
    """Plays comfy-cli: makes the folder a real install would make, or misbehaves on purpose."""

    def __init__(self, workspace: Path, behaviour: str = "ok", output: str = "") -> None:
        self.custom_nodes = workspace / "custom_nodes"
        self.custom_nodes.mkdir(parents=True, exist_ok=True)
        self.behaviour = behaviour
        self.output = output
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        spec = argv[-1]
        if self.behaviour == "exit1":
            return CommandResult(1, "Traceback ...\nERROR: boom\n")
        if self.behaviour == "nothing":
            return CommandResult(0, "install_node exit on fail:True...\n")
        if self.behaviour == "cnr-redirect":  # a registry package installed instead of the git commit
            (self.custom_nodes / "comfyui-thing").mkdir()
            return CommandResult(0, "[INSTALLED] comfyui-thing [1.0.2]\n")
        if "@" in spec and spec.startswith("http"):
            url, commit = spec.rsplit("@", 1)
            repo = self.custom_nodes / url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
            _git_repo(repo, commit if self.behaviour != "wrong-commit" else None)
        else:
            node_id, version = spec.split("@")
            target = self.custom_nodes / node_id
            target.mkdir()
            shown = "0.0.1" if self.behaviour == "wrong-version" else version
            (target / "pyproject.toml").write_text(f'[project]\nname = "{node_id}"\nversion = "{shown}"\n')
        return CommandResult(0, self.output)


def _git_repo(path: Path, wanted: str | None) -> None:
    """A real git repository whose HEAD is recorded, so verification reads a real `git rev-parse`."""
    path.mkdir(parents=True)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(path), "commit", "-q", "-m", "x"], check=True, env={**env, "PATH": "/usr/bin:/bin"}
    )
    head = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    (path / ".wanted").write_text(wanted or "")
    (path / ".head").write_text(head.stdout.strip())


def _fake_head_matching_manifest(path: Path) -> str | None:
    """git HEAD as recorded; the fake clone 'checked out' the asked-for commit when .wanted says so."""
    if not (path / ".git").is_dir():
        return None
    wanted = (path / ".wanted").read_text()
    return wanted or (path / ".head").read_text()


def test_successful_installs_are_verified(tmp_path: Path) -> None:
    ws = tmp_path / "comfyui"
    fake = FakeComfyCli(ws)
    entries = [
        GitNode("https://github.com/acme/ComfyUI-Thing", COMMIT),
        RegistryNode("comfyui-kjnodes", "1.1.7"),
    ]
    labels = install_nodes(entries, ws, comfy="comfy", runner=fake, git_head=_fake_head_matching_manifest)
    assert labels == [f"https://github.com/acme/ComfyUI-Thing@{COMMIT[:12]}", "comfyui-kjnodes@1.1.7"]
    assert len(fake.calls) == 2


@pytest.mark.parametrize(
    ("behaviour", "output", "entry", "message"),
    [
        ("exit1", "", GitNode("https://github.com/acme/ComfyUI-Thing", COMMIT), "exited with status 1"),
        ("nothing", "", RegistryNode("comfyui-kjnodes", "1.1.7"), "expected custom_nodes/comfyui-kjnodes"),
        (
            "cnr-redirect",
            "",
            GitNode("https://github.com/acme/ComfyUI-Thing", COMMIT),
            "published in the Comfy registry",
        ),
        ("wrong-commit", "", GitNode("https://github.com/acme/ComfyUI-Thing", COMMIT), f"not {COMMIT}"),
        ("wrong-version", "", RegistryNode("comfyui-kjnodes", "1.1.7"), "has version 0.0.1, not 1.1.7"),
        (
            "ok",
            "## ComfyUI-Manager: EXECUTE => pip install torch==1.0\ninstall script failed: https://github.com/acme/x\n",
            GitNode("https://github.com/acme/ComfyUI-Thing", COMMIT),
            "install script failed",
        ),
    ],
)
def test_failed_installs_fail_with_a_clear_message(
    tmp_path: Path, behaviour: str, output: str, entry: GitNode | RegistryNode, message: str
) -> None:
    ws = tmp_path / "comfyui"
    fake = FakeComfyCli(ws, behaviour, output)
    with pytest.raises(NodeInstallError, match=message) as err:
        install_nodes([entry], ws, runner=fake, git_head=_fake_head_matching_manifest)
    text = str(err.value)
    assert entry.label in text and "command: comfy --workspace" in text and "rebuild" in text


def test_verify_reads_a_real_git_head(tmp_path: Path) -> None:
    repo = tmp_path / "custom_nodes" / "ComfyUI-Thing"
    _git_repo(repo, None)
    head = (repo / ".head").read_text()
    assert (
        verify_installed(
            GitNode("https://github.com/acme/ComfyUI-Thing", head[:10]), tmp_path / "custom_nodes"
        )
        is None
    )
    problem = verify_installed(
        GitNode("https://github.com/acme/ComfyUI-Thing", COMMIT), tmp_path / "custom_nodes"
    )
    assert problem is not None and f"at commit {head[:12]}" in problem


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
