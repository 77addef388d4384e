"""Every output kind ComfyUI reports (08-11 transcripts, VHS `gifs`) becomes a typed record."""

from __future__ import annotations

from comfy_serverless.media.outputs import collect_outputs
from tests.support.reference import ws_texts


def _executed_outputs(name: str) -> dict[str, dict]:
    return {m["data"]["node"]: m["data"]["output"] for m in ws_texts(name) if m["type"] == "executed"}


def test_video_and_webm_reported_under_images_are_videos() -> None:
    files, texts = collect_outputs(_executed_outputs("09_video_mp4_webm"))
    by_name = {f.filename: f for f in files}
    assert by_name["anchor_video_00001_.mp4"].kind == "video"
    assert by_name["anchor_video_00001_.mp4"].mime == "video/mp4"
    assert by_name["anchor_video_00001_.mp4"].subfolder == "video"
    assert by_name["anchor_webm_00001_.webm"].kind == "video"
    assert by_name["anchor_webm_00001_.webm"].mime == "video/webm"
    assert texts == []


def test_animated_webp_and_png_are_videos_with_their_image_mime() -> None:
    files, _ = collect_outputs(_executed_outputs("08_animated_webp_png"))
    assert {(f.kind, f.mime, f.animated) for f in files} == {
        ("video", "image/webp", True),
        ("video", "image/png", True),
    }


def test_audio_outputs_including_temp_preview() -> None:
    files, _ = collect_outputs(_executed_outputs("10_audio"))
    kinds = {f.filename: (f.kind, f.mime, f.folder_type) for f in files}
    assert kinds["anchor_flac_00001_.flac"] == ("audio", "audio/flac", "output")
    assert kinds["anchor_mp3_00001_.mp3"] == ("audio", "audio/mpeg", "output")
    assert kinds["anchor_opus_00001_.opus"] == ("audio", "audio/ogg", "output")
    assert kinds["ComfyUI_temp_jzeew_00001_.flac"][2] == "temp"


def test_text_output() -> None:
    files, texts = collect_outputs(_executed_outputs("11_text_output_and_binary_text"))
    assert files == []
    assert [(t.node_id, t.text) for t in texts] == [("3", "48")]


def test_custom_node_keys_such_as_vhs_gifs_and_unknown_file_lists() -> None:
    outputs = {
        "12": {
            "gifs": [
                {"filename": "clip_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}
            ]
        },
        "13": {
            "gifs": [{"filename": "loop_00001.gif", "subfolder": "", "type": "output", "format": "image/gif"}]
        },
        "14": {"meshes": [{"filename": "model.glb", "subfolder": "3d", "type": "output"}]},
        "15": {"ui_flags": [True], "images": [{"subfolder": "x"}]},
    }
    files, _ = collect_outputs(outputs)
    assert [(f.node_id, f.kind, f.mime) for f in files] == [
        ("12", "video", "video/mp4"),
        ("13", "video", "image/gif"),
        ("14", "file", "model/gltf-binary"),
    ]
