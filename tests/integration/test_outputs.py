"""Every output kind comes back through RunPod's /runsync, with what the user needs to use it."""

from __future__ import annotations

import base64
import io
import wave

from tests.support.reference import workflow

from .helpers import assert_completed, assert_rgb_close, decode_image, png_b64, tiny


def test_still_image_comes_back_as_the_png_comfyui_wrote(worker, backend) -> None:
    output = assert_completed(worker.runsync({"workflow": tiny(color=0xFF8000)}))
    assert output["status"] == "success" and output["prompt_id"]
    (item,) = output["outputs"]
    assert item["node_id"] == "2" and item["type"] == "image" and item["mime"] == "image/png"
    assert item["filename"].startswith("tiny_") and item["filename"].endswith(".png")
    assert item["subfolder"] == ""
    image = decode_image(item)
    assert image.size == (64, 64)
    assert image.convert("RGB").getpixel((10, 10)) == (255, 128, 0)
    assert item["size_bytes"] == len(base64.b64decode(item["data"]))
    for stage in ("upload_ms", "queue_wait_ms", "execution_ms", "output_encoding_ms", "total_ms"):
        assert output["timings"][stage] >= 0


def test_uploaded_base64_image_is_what_the_workflow_loads(worker, backend) -> None:
    job = {
        "workflow": workflow("load_invert"),
        "images": [{"name": "anchor_input.png", "image": png_b64(color=(10, 200, 30))}],
    }
    load_node = next(n for n in job["workflow"].values() if n["class_type"] == "LoadImage")
    load_node["inputs"]["image"] = "anchor_input.png"
    output = assert_completed(worker.runsync(job))
    (item,) = [o for o in output["outputs"] if o["type"] == "image"]
    image = decode_image(item).convert("RGB")
    assert image.size == (32, 24)
    assert_rgb_close(image.getpixel((5, 5)), (245, 55, 225))  # inverted


def test_data_uri_input_is_accepted(worker) -> None:
    job = {
        "workflow": workflow("load_invert"),
        "images": [
            {"name": "anchor_input.png", "image": "data:image/png;base64," + png_b64(color=(0, 0, 0))}
        ],
    }
    next(n for n in job["workflow"].values() if n["class_type"] == "LoadImage")["inputs"]["image"] = (
        "anchor_input.png"
    )
    output = assert_completed(worker.runsync(job))
    assert_rgb_close(decode_image(output["outputs"][0]).convert("RGB").getpixel((0, 0)), (255, 255, 255))


def test_params_are_merged_over_the_workflow(worker) -> None:
    output = assert_completed(
        worker.runsync({"workflow": tiny(), "params": {"1": {"width": 40, "color": 255}}})
    )
    image = decode_image(output["outputs"][0]).convert("RGB")
    assert image.size == (40, 64)
    assert_rgb_close(image.getpixel((0, 0)), (0, 0, 255))


def test_workflow_given_as_json_string(worker) -> None:
    import json

    output = assert_completed(worker.runsync({"workflow": json.dumps(tiny())}))
    assert output["outputs"][0]["type"] == "image"


def test_identical_job_twice_returns_outputs_both_times(worker) -> None:
    """04_cached_rerun: ComfyUI would re-report an old file; each job's own prefix makes the save node
    run again, so the second job gets a real file too."""
    job = {"workflow": tiny(prefix="same")}
    first = assert_completed(worker.runsync(job))
    second = assert_completed(worker.runsync(job))
    assert first["outputs"][0]["filename"] == second["outputs"][0]["filename"]
    assert decode_image(second["outputs"][0]).tobytes() == decode_image(first["outputs"][0]).tobytes()
    assert decode_image(second["outputs"][0]).size == (64, 64)


def test_save_prefix_subfolder_is_reported_without_the_job_folder(worker) -> None:
    output = assert_completed(worker.runsync({"workflow": tiny(prefix="sub/named")}))
    (item,) = output["outputs"]
    assert item["subfolder"] == "sub"
    assert item["filename"].startswith("named_")


def test_animated_webp_and_png(worker, backend) -> None:
    backend.require("SaveAnimatedWEBP", "SaveAnimatedPNG")
    output = assert_completed(worker.runsync({"workflow": workflow("animated_webp_png")}))
    mimes = sorted(o["mime"] for o in output["outputs"])
    assert mimes == ["image/png", "image/webp"]
    for item in output["outputs"]:
        assert item["type"] == "video" and item["animated"] is True
        assert len(base64.b64decode(item["data"])) == item["size_bytes"] > 0


def test_video_outputs(worker, backend) -> None:
    backend.require("CreateVideo", "SaveVideo", "SaveWEBM", "EmptyAudio")
    output = assert_completed(worker.runsync({"workflow": workflow("video")}))
    by_mime = {o["mime"]: o for o in output["outputs"]}
    assert set(by_mime) == {"video/mp4", "video/webm"}
    assert by_mime["video/mp4"]["subfolder"] == "video" and by_mime["video/mp4"]["type"] == "video"
    mp4 = base64.b64decode(by_mime["video/mp4"]["data"])
    assert mp4[4:8] == b"ftyp"
    webm = base64.b64decode(by_mime["video/webm"]["data"])
    assert webm[:4] == b"\x1a\x45\xdf\xa3"


def test_audio_outputs_and_temp_preview_only_when_asked(worker, backend) -> None:
    backend.require("SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "PreviewAudio")
    output = assert_completed(worker.runsync({"workflow": workflow("audio")}))
    audio = output["outputs"]
    assert {o["mime"] for o in audio} == {"audio/flac", "audio/mpeg", "audio/ogg"}
    assert all(o["type"] == "audio" and o["subfolder"] == "audio" and "temp" not in o for o in audio)
    flac = next(o for o in audio if o["mime"] == "audio/flac")
    assert base64.b64decode(flac["data"])[:4] == b"fLaC"
    with_temp = assert_completed(
        worker.runsync({"workflow": workflow("audio"), "include_temp_outputs": True})
    )
    temps = [o for o in with_temp["outputs"] if o.get("temp")]
    assert len(temps) == 1 and temps[0]["type"] == "audio"


def test_preview_image_is_left_out_unless_asked(worker) -> None:
    plain = assert_completed(worker.runsync({"workflow": workflow("preview_image")}))
    asked = assert_completed(
        worker.runsync({"workflow": workflow("preview_image"), "include_temp_outputs": True})
    )
    assert [o for o in plain["outputs"] if o.get("temp")] == []
    temps = [o for o in asked["outputs"] if o.get("temp")]
    assert temps and temps[0]["type"] == "image" and decode_image(temps[0]).size[0] > 0


def test_text_output(worker, backend) -> None:
    backend.require("PreviewAny", "GetImageSize")
    output = assert_completed(worker.runsync({"workflow": workflow("text_output")}))
    texts = [o for o in output["outputs"] if o["type"] == "text"]
    assert [t["text"] for t in texts] == ["48"]
    assert base64.b64decode(texts[0]["data"]) == b"48"
    assert texts[0]["mime"] == "text/plain"


def test_progress_workflow_with_a_real_model_file(worker, backend) -> None:
    wf = workflow("progress_upscale")
    loader = next(n for n in wf.values() if n["class_type"] == "UpscaleModelLoader")
    loader["inputs"]["model_name"] = "tiny_2x.safetensors"
    output = assert_completed(worker.runsync({"workflow": wf}))
    image = decode_image(next(o for o in output["outputs"] if o["type"] == "image"))
    assert image.size[0] > 0


def test_wav_like_binary_output_round_trips() -> None:
    """Guard for the helper above: base64 of binary data must round-trip exactly."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 100)
    data = buffer.getvalue()
    assert base64.b64decode(base64.b64encode(data)) == data


def test_comfy_org_api_key_reaches_comfyui_as_worker_comfyui_sends_it(make_worker, faults, tmp_path) -> None:
    """The key goes in extra_data.api_key_comfy_org (ComfyUI hides it from /queue and /history, so the
    emulator's recording switch shows what was sent); a job's key wins over COMFY_ORG_API_KEY; neither
    is ever logged."""
    import json

    sent = tmp_path / "sent.jsonl"
    faults.set(record_prompts_to=str(sent))
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfy_org_api_key="key-from-settings")
    assert_completed(worker.runsync({"workflow": tiny(), "api_key_comfy_org": "key-from-job"}))
    assert_completed(worker.runsync({"workflow": tiny(), "comfy_org_api_key": "key-from-job-2"}))
    assert_completed(worker.runsync({"workflow": tiny()}))
    bodies = [json.loads(line) for line in sent.read_text().splitlines()]
    keys = [body.get("extra_data", {}).get("api_key_comfy_org") for body in bodies]
    assert keys[-3:] == ["key-from-job", "key-from-job-2", "key-from-settings"]
    for secret in ("key-from-job", "key-from-settings"):
        assert secret not in worker.log_text()
