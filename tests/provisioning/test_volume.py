"""Volume layout diagnosis, file counts and "model not in list" context, on temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.provisioning import (
    ModelSearchPaths,
    VolumeLayout,
    count_model_files,
    diagnose_volume,
    explain_missing_model,
)
from comfy_serverless.provisioning.cli import main


def put(root: Path, *files: str, size: int = 16) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)


def test_not_mounted_and_empty(tmp_path: Path) -> None:
    report = diagnose_volume(tmp_path / "absent")
    assert report.layout is VolumeLayout.NOT_MOUNTED and report.ok
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "lost+found").mkdir()
    assert diagnose_volume(tmp_path / "vol").layout is VolumeLayout.EMPTY


def test_standard_layout_is_ok(tmp_path: Path) -> None:
    put(tmp_path, "models/checkpoints/a.safetensors", "models/loras/sub/b.safetensors", "models/loras/c.pt")
    (tmp_path / "models" / "vae").mkdir()
    report = diagnose_volume(tmp_path)
    assert report.layout is VolumeLayout.STANDARD
    assert report.ok and report.warnings == () and report.fixes == ()
    counts = {c.path.name: c.files for c in report.standard}
    assert counts == {"checkpoints": 1, "loras": 2, "vae": 0}
    assert "OK" in report.headline


def test_bare_layout_works_but_is_named_with_the_fix(tmp_path: Path) -> None:
    put(tmp_path, "checkpoints/a.safetensors", "checkpoints/b.safetensors", "loras/c.safetensors")
    report = diagnose_volume(tmp_path)
    assert report.layout is VolumeLayout.BARE
    assert report.ok  # the shipped extra_model_paths.yaml reads it
    assert "checkpoints (2 files)" in report.warnings[0] and "loras (1 files)" in report.warnings[0]
    assert any(
        f"mkdir -p '{tmp_path}/models'" in f and f"'{tmp_path}/checkpoints'" in f for f in report.fixes
    )
    assert "works, but" in report.headline


def test_mixed_layout(tmp_path: Path) -> None:
    put(tmp_path, "models/checkpoints/a.safetensors", "loras/c.safetensors")
    report = diagnose_volume(tmp_path)
    assert report.layout is VolumeLayout.MIXED and report.ok
    assert "split between" in report.warnings[0]


def test_nested_comfyui_models_folder_is_a_problem_with_two_fixes(tmp_path: Path) -> None:
    put(tmp_path, "ComfyUI/models/checkpoints/a.safetensors", "ComfyUI/models/diffusion_models/u.safetensors")
    report = diagnose_volume(tmp_path)
    assert report.layout is VolumeLayout.NESTED and not report.ok
    assert str(tmp_path / "ComfyUI" / "models") in report.problems[0]
    assert any(f"RUNPOD_VOLUME_PATH={tmp_path / 'ComfyUI'}" in f for f in report.fixes)
    assert "LOOKS WRONG" in report.headline


def test_unrecognised_volume_names_what_it_found(tmp_path: Path) -> None:
    put(tmp_path, "stuff/deep/flux.safetensors", "notes.txt")
    report = diagnose_volume(tmp_path)
    assert report.layout is VolumeLayout.UNRECOGNISED and not report.ok
    assert "top level: notes.txt, stuff" in report.problems[0]
    assert str(tmp_path / "stuff/deep/flux.safetensors") in report.problems[0]


def test_misnamed_folders_loose_files_empty_files_and_unlisted_formats(tmp_path: Path) -> None:
    put(
        tmp_path,
        "models/lora/a.safetensors",
        "models/Checkpoints/b.safetensors",
        "models/text_encoder/t.safetensors",
    )
    put(tmp_path, "models/loose.safetensors")
    put(tmp_path, "models/vae/empty.safetensors", size=0)
    put(tmp_path, "models/diffusion_models/q4.gguf")
    report = diagnose_volume(tmp_path)
    text = report.render()
    assert not report.ok
    assert "it looks like `loras`" in text and "it looks like `checkpoints`" in text
    assert "it looks like `text_encoders`" in text
    assert f"mv '{tmp_path / 'models' / 'lora'}' '{tmp_path / 'models' / 'loras'}'" in text
    assert "loose.safetensors" in text and "only reads them inside a folder" in text
    assert "zero-byte file(s) empty.safetensors" in text
    assert "q4.gguf" in text and "custom node" in text


def test_seed_plan_custom_checkpoints_folder_is_flagged(tmp_path: Path) -> None:
    """The users' hybrid plan puts extras in /runpod-volume/custom_checkpoints, which ComfyUI never reads."""
    put(tmp_path, "loras/a.safetensors", "custom_checkpoints/c.safetensors")
    report = diagnose_volume(tmp_path)
    assert any("custom_checkpoints is not a folder ComfyUI reads" in p for p in report.problems)


def test_legacy_names_are_accepted_and_noted(tmp_path: Path) -> None:
    put(tmp_path, "models/unet/u.safetensors", "models/clip/c.safetensors")
    report = diagnose_volume(tmp_path)
    assert report.ok and report.layout is VolumeLayout.STANDARD
    assert "unet -> diffusion_models" in report.notes[0] and "clip -> text_encoders" in report.notes[0]


def test_count_model_files_follows_comfyui_rules(tmp_path: Path) -> None:
    comfy_models = tmp_path / "comfyui" / "models"
    volume = tmp_path / "vol"
    put(comfy_models, "checkpoints/baked.safetensors", "checkpoints/put_checkpoints_here")
    put(volume, "models/loras/a.safetensors", "models/configs/x.yaml", "models/configs/y.safetensors")
    put(volume, "models/diffusers/sd-turbo/model_index.json", "unet/u.sft")
    counts = {
        (c.folder, str(c.path)): c.files for c in count_model_files(ModelSearchPaths(comfy_models, volume))
    }
    assert counts == {
        ("checkpoints", str(comfy_models / "checkpoints")): 1,
        ("configs", str(volume / "models/configs")): 1,
        ("loras", str(volume / "models/loras")): 1,
        ("diffusers", str(volume / "models/diffusers")): 1,
        ("diffusion_models", str(volume / "unet")): 1,
    }


def test_check_volume_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put(tmp_path, "ComfyUI/models/checkpoints/a.safetensors")
    assert main(["check-volume", "--volume", str(tmp_path)]) == 0
    assert main(["check-volume", "--volume", str(tmp_path), "--strict"]) == 1
    assert "models below another folder" in capsys.readouterr().out


class TestExplainMissingModel:
    def paths(self, tmp_path: Path) -> ModelSearchPaths:
        return ModelSearchPaths(tmp_path / "comfyui" / "models", tmp_path / "vol")

    def test_nothing_anywhere(self, tmp_path: Path) -> None:
        text = explain_missing_model(
            "flux1-dev.safetensors",
            input_name="unet_name",
            class_type="UNETLoader",
            paths=self.paths(tmp_path),
        )
        assert "`unet_name` of UNETLoader asks for `flux1-dev.safetensors`" in text
        assert f"{tmp_path}/vol/models/diffusion_models (missing)" in text
        assert "offers no file at all in `diffusion_models`" in text
        assert "bake it into the image" in text  # no volume mounted

    def test_file_in_the_wrong_folder(self, tmp_path: Path) -> None:
        put(
            tmp_path,
            "vol/models/diffusion_models/flux1-dev.safetensors",
            "vol/models/checkpoints/sd15.safetensors",
        )
        text = explain_missing_model(
            "flux1-dev.safetensors",
            input_name="ckpt_name",
            class_type="CheckpointLoaderSimple",
            paths=self.paths(tmp_path),
        )
        assert f"{tmp_path}/vol/models/checkpoints (1 file)" in text
        assert "ComfyUI offers 1 file(s) there: sd15.safetensors" in text
        assert "in folder `diffusion_models`, but CheckpointLoaderSimple reads `checkpoints`" in text
        assert "UNETLoader" in text

    def test_file_where_the_worker_does_not_look(self, tmp_path: Path) -> None:
        put(tmp_path, "vol/ComfyUI/models/loras/style.safetensors")
        volume = diagnose_volume(tmp_path / "vol")
        text = explain_missing_model(
            "style.safetensors",
            input_name="lora_name",
            class_type="LoraLoader",
            paths=self.paths(tmp_path),
            volume=volume,
        )
        assert (
            f"Found {tmp_path}/vol/ComfyUI/models/loras/style.safetensors, "
            "in a place the worker does not read" in text
        )
        assert f"move it to {tmp_path}/vol/models/loras/" in text
        assert "The network volume looks wrong" in text and "RUNPOD_VOLUME_PATH=" in text

    def test_subfolder_name_and_similar_names(self, tmp_path: Path) -> None:
        put(
            tmp_path,
            "vol/models/loras/styles/anime.safetensors",
            "vol/models/loras/Detail_Tweaker.safetensors",
        )
        text = explain_missing_model("anime.safetensors", folder="loras", paths=self.paths(tmp_path))
        assert "listed as `styles/anime.safetensors`" in text
        assert "use the name `styles/anime.safetensors`" in text
        text = explain_missing_model(
            "detail_tweaker.safetensors",
            folder="loras",
            paths=self.paths(tmp_path),
            available=["Detail_Tweaker.safetensors", "styles/anime.safetensors"],
        )
        assert "Similar names there: Detail_Tweaker.safetensors" in text
        # An unrelated file is not offered as similar just because both end in .safetensors.
        text = explain_missing_model(
            "sdxl_base.safetensors", folder="checkpoints", available=["random_sd15_arch.safetensors"]
        )
        assert "Similar names there" not in text
        text = explain_missing_model(
            "v1-5-pruned-emaonly.safetensors",
            folder="checkpoints",
            available=["v1-5-pruned-emaonly-fp16.safetensors", "sd_xl_base_1.0.safetensors"],
        )
        assert "Similar names there: v1-5-pruned-emaonly-fp16.safetensors" in text

    def test_unlisted_format_and_empty_file(self, tmp_path: Path) -> None:
        put(tmp_path, "vol/models/diffusion_models/flux-q4.gguf")
        put(tmp_path, "comfyui/models/vae/ae.safetensors", size=0)
        text = explain_missing_model("flux-q4.gguf", input_name="unet_name", paths=self.paths(tmp_path))
        assert "does not list `.gguf` files" in text
        text = explain_missing_model("ae.safetensors", input_name="vae_name", paths=self.paths(tmp_path))
        assert "empty (zero bytes)" in text

    def test_unknown_input(self) -> None:
        text = explain_missing_model("x", input_name="mystery", available=["y", "xx"])
        assert "not a known model loader" in text and "Similar names there: xx" in text
