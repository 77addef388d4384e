""" "Model not found" errors say which files exist, for every loader, however many there are."""

from __future__ import annotations

from tests.support.reference import workflow

from .helpers import assert_failed


def test_missing_model_lists_available_files_even_past_comfyuis_20_entry_cut(
    make_worker, backend, tmp_path
) -> None:
    models = tmp_path / "many"
    (models / "upscale_models").mkdir(parents=True)
    for index in range(25):
        (models / "upscale_models" / f"upscaler_{index:02}.safetensors").write_bytes(b"x")
    yaml = tmp_path / "many.yaml"
    yaml.write_text(f"many:\n  base_path: {models}\n  upscale_models: upscale_models\n")
    worker = make_worker(comfyui_extra_model_paths=yaml)
    wf = workflow("progress_upscale")
    next(n for n in wf.values() if n["class_type"] == "UpscaleModelLoader")["inputs"]["model_name"] = (
        "4x-missing.pth"
    )
    error = assert_failed(worker.runsync({"workflow": wf}), "UpscaleModelLoader", "4x-missing.pth")
    if "is not available" in error:  # ComfyUI versions that validate the list before running
        assert "upscaler_00.safetensors" in error and "upscaler_24.safetensors" in error
    assert "upscale_models" in error
