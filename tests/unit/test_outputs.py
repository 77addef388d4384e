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
        ("14", "3d", "model/gltf-binary"),
    ]


def test_newer_entries_keep_their_metadata_and_ignore_asset_ids() -> None:
    """Newer ComfyUI adds `metadata` to every file entry and `id`/`preview_id` with assets on
    (execution.py@04e2a91433 execute(): enrich_output_with_media_metadata, register_executed_outputs)."""
    files, texts = collect_outputs(
        {
            "9": {
                "images": [
                    {
                        "filename": "job-ab_00001_.png",
                        "subfolder": "job-ab",
                        "type": "output",
                        "metadata": {"kind": "image", "width": 512, "height": 384},
                        "id": "6f1c0000-0000-4000-8000-000000000001",
                        "preview_id": "6f1c0000-0000-4000-8000-000000000001",
                    }
                ]
            },
            "12": {
                "images": [
                    {
                        "filename": "clip_00001_.mp4",
                        "subfolder": "video",
                        "type": "output",
                        "format": "video/h264-mp4",
                        "metadata": {
                            "kind": "video",
                            "width": 64,
                            "height": 48,
                            "duration": 0.75,
                            "fps": 8.0,
                            "frame_count": 6,
                        },
                    }
                ],
                "animated": [True],
            },
        }
    )
    assert texts == []
    image, video = files
    assert (image.kind, image.filename, image.metadata) == (
        "image",
        "job-ab_00001_.png",
        {"kind": "image", "width": 512, "height": 384},
    )
    assert (video.kind, video.mime, video.metadata["frame_count"]) == ("video", "video/mp4", 6)


def test_3d_outputs_are_files_and_a_3d_previews_viewer_state_is_not_text() -> None:
    """SaveGLB reports a `3d` list; a 3D preview's `result` is [model file, camera state, background]
    (comfy_api/latest/_ui.py PreviewUI3D; newer PreviewUI3DAdvanced adds the saved file under `3d`)."""
    files, texts = collect_outputs(
        {
            "5": {"3d": [{"filename": "mesh_00001_.glb", "subfolder": "mesh", "type": "output"}]},
            "6": {
                "result": ["mesh/mesh_00001_.glb [output]", {"position": [0, 0, 5]}, None],
                "3d": [{"filename": "preview_00001_.glb", "subfolder": "", "type": "output"}],
            },
        }
    )
    assert texts == []
    assert [(f.node_id, f.kind, f.mime, f.filename) for f in files] == [
        ("5", "3d", "model/gltf-binary", "mesh_00001_.glb"),
        ("6", "3d", "model/gltf-binary", "preview_00001_.glb"),
    ]
