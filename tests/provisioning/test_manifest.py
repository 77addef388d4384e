"""Model manifest reader, named sets, and the properties.models converter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.provisioning import (
    ManifestError,
    load_model_manifest,
    models_from_workflow,
    select_models,
)
from comfy_serverless.provisioning.cli import main
from comfy_serverless.provisioning.manifest import parse_model_manifest

from .conftest import REPO, FileServer

SHA_A = "a" * 64
SHA_B = "b" * 64


def doc(*models: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "models": list(models)}


def model(name: str = "m.safetensors", **kw: Any) -> dict[str, Any]:
    base = {"name": name, "url": f"https://example.org/{name}", "folder": "checkpoints", "sha256": SHA_A}
    base.update(kw)
    return base


def test_yaml_and_json_manifests_read_the_same(tmp_path: Path) -> None:
    data = doc(
        model(sets=["sdxl"]), model("b.safetensors", folder="unet", sha256=SHA_B.upper(), sets="video")
    )
    (tmp_path / "m.json").write_text(json.dumps(data))
    (tmp_path / "m.yaml").write_text(
        "version: 1\nmodels:\n"
        f"  - {{name: m.safetensors, url: 'https://example.org/m.safetensors', folder: checkpoints, "
        f"sha256: {SHA_A}, sets: [sdxl]}}\n"
        f"  - {{name: b.safetensors, url: 'https://example.org/b.safetensors', folder: unet, "
        f"sha256: {SHA_B.upper()}, sets: video}}\n"
    )
    from_json = load_model_manifest(tmp_path / "m.json")
    from_yaml = load_model_manifest(tmp_path / "m.yaml")
    assert from_json.models == from_yaml.models
    second = from_json.models[1]
    assert second.folder == "diffusion_models"  # legacy `unet` mapped to the folder ComfyUI files it under
    assert second.sha256 == SHA_B and second.sets == ("video",)
    assert str(second.relative_path) == "diffusion_models/b.safetensors"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (model(sha256="abc"), "64 hex digits"),
        (model(sha256=None), "64 hex digits"),
        (model(name="../etc/passwd"), "relative file name"),
        (model(name="/abs.safetensors"), "relative file name"),
        (model(url="ftp://x/y"), "http"),
        (model(folder="check points"), "folder"),
        (model(sets=["all"]), "reserved"),
        (model(token_env="not a var"), "token_env"),
        ({**model(), "extra": 1}, "unknown keys"),
    ],
)
def test_bad_entries_are_rejected_with_the_field_named(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message) as err:
        parse_model_manifest(doc(bad), "models.yaml")
    assert "models.yaml: models[0]" in str(err.value)


def test_duplicates_and_versions_are_rejected() -> None:
    with pytest.raises(ManifestError, match="listed twice"):
        parse_model_manifest(doc(model(), model(url="https://example.org/other")))
    with pytest.raises(ManifestError, match="unsupported manifest version"):
        parse_model_manifest({"version": 2, "models": []})


def test_unknown_folder_is_a_warning_not_an_error() -> None:
    manifest = parse_model_manifest(doc(model(folder="ipadapter")))
    assert manifest.models[0].folder == "ipadapter"
    assert any("ipadapter" in w for w in manifest.warnings)


def test_named_sets() -> None:
    manifest = parse_model_manifest(
        doc(
            model("a", sets=["sdxl"]),
            model("b", sets=["sdxl", "video"]),
            model("c", sets=["video"]),
            model("d"),
        )
    )
    assert [m.name for m in select_models(manifest, "sdxl")] == ["a", "b"]
    assert [m.name for m in select_models(manifest, "sdxl,video")] == ["a", "b", "c"]
    assert [m.name for m in select_models(manifest, ["video"])] == ["b", "c"]
    assert [m.name for m in select_models(manifest, "all")] == ["a", "b", "c", "d"]
    assert select_models(manifest, "none") == [] and select_models(manifest, "") == []
    with pytest.raises(ManifestError, match=r"unknown model set\(s\) sdlx; known sets: sdxl, video"):
        select_models(manifest, "sdlx")


def test_shipped_manifests_are_valid() -> None:
    manifest = load_model_manifest(REPO / "docker" / "manifests" / "models.yaml")
    assert manifest.warnings == ()
    assert manifest.set_names == ["sd15", "sdxl"]
    for entry in manifest.models:
        assert "/resolve/main/" not in entry.url, "pin URLs to a revision so the bytes match the sha256"


WORKFLOW: dict[str, Any] = {
    "nodes": [
        {
            "id": 37,
            "type": "UNETLoader",
            "properties": {
                "models": [
                    {
                        "name": "flux1-dev.safetensors",
                        "url": "https://huggingface.co/x/resolve/main/flux1-dev.safetensors?download=true",
                        "directory": "diffusion_models",
                        "hash": SHA_A,
                        "hash_type": "SHA256",
                    }
                ]
            },
        },
        {
            "id": 38,
            "type": "DualCLIPLoader",
            "properties": {
                "models": [
                    {
                        "name": "clip_l.safetensors",
                        "url": "https://h/clip_l.safetensors",
                        "directory": "clip",
                    },
                    {
                        "name": "t5xxl.safetensors",
                        "url": "https://h/t5xxl.safetensors",
                        "directory": "text_encoders",
                    },
                ]
            },
        },
        {"id": 39, "type": "KSampler", "properties": {}},
    ],
    "definitions": {
        "subgraphs": [
            {
                "nodes": [
                    {
                        "id": 1,
                        "type": "VAELoader",
                        "properties": {
                            "models": [
                                {
                                    "name": "ae.safetensors",
                                    "url": "https://h/ae.safetensors",
                                    "directory": "vae",
                                }
                            ]
                        },
                    }
                ]
            }
        ]
    },
    "models": [
        {"name": "t5xxl.safetensors", "url": "https://h/t5xxl.safetensors", "directory": "text_encoders"},
        {"name": "broken.safetensors", "directory": "vae"},
    ],
}


def test_properties_models_are_collected_from_nodes_subgraphs_and_top_level() -> None:
    models, warnings = models_from_workflow(WORKFLOW)
    by_name = {m.name: m for m in models}
    assert set(by_name) == {
        "flux1-dev.safetensors",
        "clip_l.safetensors",
        "t5xxl.safetensors",
        "ae.safetensors",
    }
    assert by_name["flux1-dev.safetensors"].sha256 == SHA_A
    assert by_name["flux1-dev.safetensors"].folder == "diffusion_models"
    assert by_name["clip_l.safetensors"].folder == "text_encoders"  # `clip` is ComfyUI's legacy name
    assert by_name["ae.safetensors"].sha256 is None
    assert any("broken.safetensors" in w for w in warnings)


def test_conflicting_urls_and_api_format_are_errors() -> None:
    clash = json.loads(json.dumps(WORKFLOW))
    clash["models"][0]["url"] = "https://elsewhere/t5xxl.safetensors"
    with pytest.raises(ManifestError, match="two URLs"):
        models_from_workflow(clash)
    with pytest.raises(ManifestError, match="API-format"):
        models_from_workflow({"3": {"class_type": "KSampler", "inputs": {}}})


def test_cli_models_from_workflow_resolves_hashes_and_writes_a_loadable_manifest(
    tmp_path: Path, file_server: FileServer
) -> None:
    wf = json.loads(json.dumps(WORKFLOW))
    wf["models"] = []
    for node in [*wf["nodes"], *wf["definitions"]["subgraphs"][0]["nodes"]]:
        for m in node.get("properties", {}).get("models", []):
            if "hash" not in m:
                path = f"/resolve/{m['name']}"
                m["url"] = file_server.base_url + path
                file_server.files[path] = m["name"].encode()
                file_server.linked_etag[path] = SHA_B
    (tmp_path / "wf.json").write_text(json.dumps(wf))

    assert main(["models-from-workflow", str(tmp_path / "wf.json"), "-o", str(tmp_path / "no.yaml")]) == 1
    assert not (tmp_path / "no.yaml").exists()

    out = tmp_path / "models.yaml"
    status = main(
        [
            "models-from-workflow",
            str(tmp_path / "wf.json"),
            "--set",
            "flux",
            "--resolve-hashes",
            "-o",
            str(out),
        ]
    )
    assert status == 0
    manifest = load_model_manifest(out)
    assert {m.name: m.sha256 for m in manifest.models} == {
        "flux1-dev.safetensors": SHA_A,
        "clip_l.safetensors": SHA_B,
        "t5xxl.safetensors": SHA_B,
        "ae.safetensors": SHA_B,
    }
    assert all(m.sets == ("flux",) for m in manifest.models)


def test_cli_compute_hashes_streams_the_file(tmp_path: Path, file_server: FileServer) -> None:
    import hashlib

    file_server.files["/ae.safetensors"] = b"vae bytes"
    wf = {
        "nodes": [
            {
                "id": 1,
                "type": "VAELoader",
                "properties": {
                    "models": [
                        {
                            "name": "ae.safetensors",
                            "url": f"{file_server.base_url}/ae.safetensors",
                            "directory": "vae",
                        }
                    ]
                },
            }
        ]
    }
    (tmp_path / "wf.json").write_text(json.dumps(wf))
    out = tmp_path / "m.yaml"
    assert main(["models-from-workflow", str(tmp_path / "wf.json"), "--compute-hashes", "-o", str(out)]) == 0
    assert load_model_manifest(out).models[0].sha256 == hashlib.sha256(b"vae bytes").hexdigest()


def test_cli_fetch_models_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    src = tmp_path / "lora.bin"
    src.write_bytes(b"lora")
    good = hashlib.sha256(b"lora").hexdigest()
    manifest = tmp_path / "m.json"
    manifest.write_text(
        json.dumps(
            doc(
                {
                    "name": "l.safetensors",
                    "url": src.as_uri(),
                    "folder": "loras",
                    "sha256": good,
                    "sets": ["s"],
                },
                {
                    "name": "x.safetensors",
                    "url": src.as_uri(),
                    "folder": "vae",
                    "sha256": SHA_A,
                    "sets": ["bad"],
                },
            )
        )
    )
    dest = tmp_path / "models"
    assert main(["fetch-models", "--manifest", str(manifest), "--set", "s", "--dest", str(dest)]) == 0
    assert (dest / "loras" / "l.safetensors").read_bytes() == b"lora"
    assert main(["fetch-models", "--manifest", str(manifest), "--set", "bad", "--dest", str(dest)]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not (dest / "vae" / "x.safetensors").exists()
    assert main(["fetch-models", "--manifest", str(manifest), "--set", "typo", "--dest", str(dest)]) == 1


def test_a_templates_models_become_a_manifest_the_full_image_can_bake(
    tmp_path: Path, file_server: FileServer
) -> None:
    """TEMPLATE_MODELS in Dockerfile.serverless: the template manifest's own `models` list, with the
    hashes it lacks asked from the server, into a manifest fetch-models then downloads and checks."""
    file_server.files["/unet.safetensors"] = b"unet"
    file_server.linked_etag["/unet.safetensors"] = SHA_B
    (tmp_path / "mine.yaml").write_text(
        "title: Mine\nworkflow: mine.json\nmodels:\n"
        f"  - {{name: unet.safetensors, folder: unet, url: '{file_server.base_url}/unet.safetensors'}}\n"
        f"  - {{name: sub/lora.safetensors, folder: loras, url: 'https://example.com/l', sha256: {SHA_A}}}\n"
    )
    out = tmp_path / "models.yaml"
    argv = [
        "models-from-workflow",
        str(tmp_path / "mine.yaml"),
        "--set",
        "templates",
        "--resolve-hashes",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    manifest = load_model_manifest(out)
    assert [(m.folder, m.name, m.sha256, m.sets) for m in manifest.models] == [
        ("diffusion_models", "unet.safetensors", SHA_B, ("templates",)),
        ("loras", "sub/lora.safetensors", SHA_A, ("templates",)),
    ]
