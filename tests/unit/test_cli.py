"""The comfy-serverless command: convert an editor workflow, list templates, print their schemas; validate
a workflow; run, follow, cancel jobs on an endpoint (a stand-in for RunPod's API), with their exit codes."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.cli import ExitCode, jobs, main
from comfy_serverless.cli.common import CommandError, exit_code_for
from comfy_serverless.cli.jobs import job_spec
from comfy_serverless.client import (
    EndpointClient,
    InputTooLarge,
    OutputDownloadFailed,
    ServiceUnavailable,
    SubmitUncertain,
    WaitTimeout,
)
from comfy_serverless.comfy.validation import describe_rejection
from tests.support.fake_endpoint import (
    API_KEY,
    FAST_POLL,
    FAST_RETRY,
    FakeEndpoint,
    JobPlan,
    image_item,
    success,
)
from tests.support.reference import REFERENCE, http_exchanges, object_info_raw, workflow

OBJECT_INFO = REFERENCE / "transcripts" / "object_info.json"
EDITOR = {
    "version": 0.4,
    "nodes": [
        {
            "id": 4,
            "type": "EmptyImage",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [7]}],
            "properties": {},
            "widgets_values": [32, 16, 1, 255],
        },
        {
            "id": 9,
            "type": "SaveImage",
            "title": "Result",
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 7}],
            "outputs": [],
            "properties": {},
            "widgets_values": ["cli"],
        },
    ],
    "links": [[7, 4, 0, 9, 0, "IMAGE"]],
}


@pytest.fixture
def object_info_server() -> Iterator[str]:
    body = json.dumps(object_info_raw()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if self.path == "/object_info" else 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if code == 200:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _convert(tmp_path: Path, capsys: pytest.CaptureFixture[str], *source: str) -> tuple[int, str, str]:
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(EDITOR))
    status = main(["convert", str(path), *source])
    out, err = capsys.readouterr()
    return status, out, err


def test_convert_prints_the_api_prompt_from_a_saved_object_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _convert(tmp_path, capsys, "--object-info", str(OBJECT_INFO))
    assert status == 0 and err == ""
    prompt = json.loads(out)
    assert prompt["4"]["inputs"] == {"width": 32, "height": 16, "batch_size": 1, "color": 255}
    assert prompt["9"] == {
        "inputs": {"filename_prefix": "cli", "images": ["4", 0]},
        "class_type": "SaveImage",
        "_meta": {"title": "Result"},
    }


def test_convert_reads_object_info_from_a_running_comfyui(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], object_info_server: str
) -> None:
    status, out, _ = _convert(tmp_path, capsys, "--comfy-url", object_info_server)
    assert status == 0
    assert json.loads(out)["9"]["inputs"]["images"] == ["4", 0]


def test_convert_fails_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _convert(tmp_path, capsys, "--comfy-url", "http://127.0.0.1:9")
    assert status == ExitCode.UNAVAILABLE == 7 and out == ""
    assert "cannot read http://127.0.0.1:9/object_info" in err
    broken = json.loads(json.dumps(EDITOR))
    broken["nodes"][1]["type"] = "SaveEverything"
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    assert (
        main(["convert", str(tmp_path / "bad.json"), "--object-info", str(OBJECT_INFO)]) == ExitCode.INVALID
    )
    assert "node 9 ('SaveEverything')" in capsys.readouterr().err
    assert (
        main(["convert", str(tmp_path / "missing.json"), "--object-info", str(OBJECT_INFO)]) == ExitCode.ERROR
    )
    assert "cannot read workflow" in capsys.readouterr().err


def test_convert_passes_an_api_workflow_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "api.json").write_text(json.dumps(workflow("tiny_image")))
    assert main(["convert", str(tmp_path / "api.json"), "--object-info", str(OBJECT_INFO)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == workflow("tiny_image")
    assert "already in API format" in err


def test_templates_lists_names_and_parameters_and_prints_a_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == 0
    listing = capsys.readouterr().out
    assert "ltx2_t2v" in listing and "LTX-2 text to video" in listing
    assert "prompt:string, negative_prompt?:string, duration?:number" in listing
    assert main(["templates", "sdxl_t2i"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["template"] == {"const": "sdxl_t2i", "description": "The template's name."}
    assert main(["templates", "nope"]) == 1
    assert "there is no template 'nope' (available: flux1_schnell_t2i" in capsys.readouterr().err


# --- validate --------------------------------------------------------------------------------------


def _recorded(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A workflow real ComfyUI 0.8.0 refused (12_validation_errors), and its answer."""
    for exchange in http_exchanges("12_validation_errors"):
        if exchange.get("label") == f"POST /prompt {name}":
            return exchange["request"]["json"]["prompt"], exchange["response"]["json"]
    raise LookupError(name)


def _validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workflow: Any, *extra: str
) -> tuple[int, str]:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(workflow))
    code = main(["validate", str(path), *(extra or ("--object-info", str(OBJECT_INFO)))])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def test_validate_passes_a_runnable_workflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _validate(tmp_path, capsys, workflow("tiny_image")) == (
        0,
        "valid: 2 nodes; output nodes: 2 (SaveImage)\n",
    )
    assert _validate(tmp_path, capsys, EDITOR) == (0, "valid: 2 nodes; output nodes: 9 (SaveImage)\n")


@pytest.mark.parametrize(
    "name",
    [
        "broken_unknown_class",
        "broken_multiple_errors",
        "broken_type_mismatch",
        "broken_bad_link_output_index",
    ],
)
def test_validate_names_the_problems_as_the_worker_does(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt, answer = _recorded(name)
    worker_says = describe_rejection(answer["error"], answer["node_errors"], prompt).message
    assert _validate(tmp_path, capsys, prompt) == (ExitCode.INVALID, worker_says + "\n")


def test_validate_reads_a_running_comfyui_and_explains_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], object_info_server: str
) -> None:
    prompt, _ = _recorded("broken_multiple_errors")
    code, out = _validate(tmp_path, capsys, prompt, "--comfy-url", object_info_server, "--json")
    report = json.loads(out)
    assert code == ExitCode.INVALID
    assert report["valid"] is False and report["format"] == "api" and report["nodes"] == 4
    assert report["error_type"] == "workflow_validation_failed"
    assert report["error"] == (
        "ComfyUI rejected the workflow: node 1 (EmptyImage) input 'width': Value 99999 bigger than max of "
        "16384; node 3 (ImageInvert) input 'image': required input is missing"
    )
    assert [(p["node_id"], p["input"], p["type"]) for p in report["problems"]] == [
        ("1", "width", "value_bigger_than_max"),
        ("3", "image", "required_input_missing"),
    ]
    code, out = _validate(tmp_path, capsys, EDITOR, "--comfy-url", object_info_server, "--json")
    assert code == 0
    assert json.loads(out) == {"valid": True, "format": "editor", "nodes": 2, "output_nodes": ["9"]}


def test_validate_an_editor_workflow_the_converter_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = json.loads(json.dumps(EDITOR))
    broken["nodes"][1]["type"] = "SaveEverything"
    code, out = _validate(tmp_path, capsys, broken)
    assert code == ExitCode.INVALID
    assert out.startswith(
        "the workflow uses node types this ComfyUI does not have: node 9 ('SaveEverything'); they are "
        "probably custom nodes that are not installed"
    )


# --- run: arguments --------------------------------------------------------------------------------


def test_workflow_params_are_node_inputs_with_json_values(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow("tiny_image")))
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)
    spec, note = job_spec(
        str(path),
        [
            "KSampler.seed=random",
            "3.cfg=7.5",
            "Load v1.5 LoRA.strength=1",
            "Prompt.text=a cat",
            "Prompt.text=a dog",
        ],
        [f"photo.png={photo}", f"masks/m.png={photo}"],
        timeout=120,
    )
    assert note is None and spec.workflow == path and spec.template is None
    assert spec.params == {
        "KSampler": {"seed": "random"},
        "3": {"cfg": 7.5},
        "Load v1.5 LoRA": {"strength": 1},
        "Prompt": {"text": "a dog"},
    }
    sent = spec.job_input()
    assert sent.fields["params"] == spec.params
    assert sent.fields["timeout"] == 120
    assert sent.fields["workflow"] == workflow("tiny_image")
    assert [(f.name, f.subfolder, f.path) for f in sent.files] == [
        ("photo.png", None, photo),
        ("m.png", "masks", photo),
    ]


def test_template_params_are_top_level_and_media_files_are_parameters(tmp_path: Path) -> None:
    photo = tmp_path / "portrait.png"
    photo.write_bytes(PNG)
    spec, note = job_spec(
        "ltx2_i2v",
        ["prompt=She turns and smiles", 'negative_prompt="blur"', "duration=4", "seed=42", "KSampler.cfg=3"],
        [f"image={photo}", f"extra.png={photo}"],
        templates=["ltx2_i2v", "sdxl_t2i"],
    )
    assert note is None and spec.template == "ltx2_i2v"
    sent = spec.job_input()
    assert sent.fields == {
        "template": "ltx2_i2v",
        "prompt": "She turns and smiles",
        "negative_prompt": "blur",
        "duration": 4,
        "seed": 42,
        "params": {"KSampler": {"cfg": 3}},
    }
    assert sent.parameter_files["image"].path == photo
    assert [f.name for f in sent.files] == ["extra.png"]


def test_an_unknown_template_name_is_sent_with_a_note() -> None:
    spec, note = job_spec("my_custom", [], [], templates=["sdxl_t2i"])
    assert spec.template == "my_custom"
    assert note == (
        "'my_custom' is not a template known here (sdxl_t2i); sent as a template name all the same, since "
        "the endpoint may have its own"
    )


NODE_INPUT = "a workflow's parameters are NODE.INPUT=VALUE, NODE a node id or title (e.g. --param KSampler.seed=random)"


@pytest.mark.parametrize(
    ("target", "params", "inputs", "code", "message"),
    [
        ("sdxl_t2i", ["prompt"], [], ExitCode.USAGE, "--param 'prompt': expected NAME=VALUE"),
        ("WORKFLOW", ["seed=1"], [], ExitCode.USAGE, f"--param 'seed=1': {NODE_INPUT}"),
        ("WORKFLOW", [".seed=1"], [], ExitCode.USAGE, f"--param '.seed=1': {NODE_INPUT}"),
        ("WORKFLOW", [], ["photo.png"], ExitCode.USAGE, "--input 'photo.png': expected NAME=FILE"),
        (
            "WORKFLOW",
            [],
            ["p.png=/no/p.png"],
            ExitCode.ERROR,
            "--input 'p.png=/no/p.png': /no/p.png is not a file",
        ),
        ("flows/nowhere.json", [], [], ExitCode.ERROR, "there is no workflow file flows/nowhere.json"),
    ],
)
def test_bad_run_arguments_are_refused_with_the_reason(
    tmp_path: Path, target: str, params: list[str], inputs: list[str], code: ExitCode, message: str
) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow("tiny_image")))
    with pytest.raises(CommandError) as raised:
        job_spec(str(path) if target == "WORKFLOW" else target, params, inputs)
    assert raised.value.code == code
    assert str(raised.value) == message


def test_the_command_line_needs_an_endpoint_and_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow("tiny_image")))
    assert main(["run", str(path)]) == ExitCode.USAGE
    assert (
        "name the endpoint: --endpoint ID (or RUNPOD_ENDPOINT_ID), or --local URL" in capsys.readouterr().err
    )
    assert main(["status", "job-1", "--endpoint", "ep"]) == ExitCode.USAGE
    assert "RunPod's API needs your API key: set RUNPOD_API_KEY" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["run", str(path), "--endpoint", "ep", "--local", "http://127.0.0.1:8000"])
    assert raised.value.code == ExitCode.USAGE
    assert "not allowed with argument" in capsys.readouterr().err


# --- run, status, cancel against a stand-in endpoint -----------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
RUNNING = {
    "stage": "running",
    "node_id": "3",
    "class_type": "KSampler",
    "step": 12,
    "steps": 30,
    "nodes_done": 4,
    "nodes_total": 9,
    "percent": 48.9,
}


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEndpoint]:
    """A stand-in endpoint without a key; the command's client polls it every few milliseconds."""
    monkeypatch.setattr(
        jobs, "EndpointClient", functools.partial(EndpointClient, poll=FAST_POLL, retry=FAST_RETRY)
    )
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with FakeEndpoint(api_key=None) as server:
        yield server


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(workflow("tiny_image")))
    return path


def _run(endpoint: FakeEndpoint, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", *args, "--local", endpoint.url])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_saves_each_output_with_its_node_id_and_prints_where(
    endpoint: FakeEndpoint, tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.plan(
        JobPlan(
            queue_polls=1,
            progress=[{"stage": "queued"}, RUNNING],
            output=success(image_item("9", "ComfyUI_00001_.png", PNG), seeds={"3": 918273645}),
        )
    )
    out_dir = tmp_path / "results"
    code, out, err = _run(
        endpoint, capsys, str(tiny_file), "--out", str(out_dir), "--param", "2.filename_prefix=x"
    )

    assert code == 0 and err == ""
    assert (out_dir / "9_ComfyUI_00001_.png").read_bytes() == PNG
    lines = out.splitlines()
    assert lines[:5] == [
        "job job-1: submitted",
        "job job-1: in queue",
        lines[2],
        "job job-1: queued in ComfyUI",
        "job job-1: node 3 (KSampler), step 12/30, 48.9%",
    ]
    assert lines[2].startswith("job job-1: left the queue after ")
    assert lines[5].startswith("job job-1 completed in ")
    assert lines[6:] == [
        f"saved 1 output to {out_dir}:",
        f"  {out_dir / '9_ComfyUI_00001_.png'}  (image, 72 bytes)",
        "seeds: node 3 = 918273645",
    ]
    assert endpoint.jobs["job-1"].input["params"] == {"2": {"filename_prefix": "x"}}


def test_run_json_lists_the_saved_files_and_timings(
    endpoint: FakeEndpoint, tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.plan(
        JobPlan(progress=[RUNNING], output=success(image_item("9", "a.png", PNG), timings={"total_ms": 12.5}))
    )
    code, out, err = _run(endpoint, capsys, str(tiny_file), "--out", str(tmp_path / "o"), "--json")
    report = json.loads(out)
    assert code == 0 and err == ""
    assert report["job_id"] == "job-1" and report["status"] == "COMPLETED" and report["exit_code"] == 0
    assert report["outputs"] == [
        {
            "node_id": "9",
            "type": "image",
            "filename": "a.png",
            "mime": "image/png",
            "size_bytes": len(PNG),
            "sha256": hashlib.sha256(PNG).hexdigest(),
            "path": str(tmp_path / "o" / "9_a.png"),
        }
    ]
    assert Path(report["outputs"][0]["path"]).read_bytes() == PNG
    assert report["timings"] == {"total_ms": 12.5}
    assert (report["delay_ms"], report["execution_ms"]) == (1500.0, 800.0)


def test_a_template_run_sends_its_parameters_and_media_files(
    endpoint: FakeEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "portrait.png"
    photo.write_bytes(PNG)
    code, _, err = _run(
        endpoint,
        capsys,
        "ltx2_i2v",
        "--param",
        "prompt=She smiles",
        "--param",
        "seed=7",
        "--input",
        f"image={photo}",
        "--timeout",
        "300",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0 and err == ""
    assert endpoint.jobs["job-1"].input == {
        "template": "ltx2_i2v",
        "prompt": "She smiles",
        "seed": 7,
        "timeout": 300,
        "image": base64.b64encode(PNG).decode(),
    }


FAILURES = [
    (
        {
            "error": "Invalid job input: images[2].image: Field required",
            "output": {"error_type": "invalid_input"},
        },
        3,
    ),
    ({"error": "ComfyUI rejected the workflow: node 4 (LoraLoader) input 'lora_name': …"}, 3),
    ({"error": "the workflow uses node types this ComfyUI does not have: node 12 ('VHS_VideoCombine')"}, 3),
    ({"error": "Node 7 (KSampler) failed: RuntimeError: CUDA out of memory"}, 4),
    (
        {
            "error": "Node 7 (SaveImage) ran out of disk space: OSError: …",
            "output": {"error_type": "disk_full"},
        },
        4,
    ),
    ({"error": "the outputs are 30 MB …", "output": {"error_type": "output_too_large"}}, 4),
    ({"error": "uploading failed", "output": {"error_type": "output_error"}}, 4),
    ({"error": "Job timed out after 300 s while ComfyUI was running node 12 (VAEDecode)"}, 5),
    ({"error": "ComfyUI was killed by SIGKILL while running node 7"}, 7),
    ({"error": "ComfyUI did not become ready in 180 s", "output": {"error_type": "comfyui_unavailable"}}, 7),
]


@pytest.mark.parametrize(("failure", "code"), FAILURES, ids=[f["error"][:30] for f, _ in FAILURES])
def test_a_failed_job_exits_with_its_category_code_and_the_worker_sentence(
    endpoint: FakeEndpoint,
    tiny_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    failure: dict[str, Any],
    code: int,
) -> None:
    endpoint.plan(JobPlan(outcome="FAILED", error=failure["error"], output=failure.get("output")))
    exit_code, _, err = _run(endpoint, capsys, str(tiny_file), "--out", str(tmp_path / "o"))
    assert exit_code == code
    assert err == f"comfy-serverless: job job-1: {failure['error']}\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("outcome", "code"), [("CANCELLED", ExitCode.CANCELLED), ("TIMED_OUT", ExitCode.TIMED_OUT)]
)
def test_runpod_own_ends_have_their_codes(
    endpoint: FakeEndpoint,
    tiny_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    outcome: str,
    code: ExitCode,
) -> None:
    endpoint.plan(JobPlan(outcome=outcome, output=None))
    exit_code, out, _ = _run(endpoint, capsys, str(tiny_file), "--out", str(tmp_path / "o"), "--json")
    report = json.loads(out)
    assert exit_code == code == report["exit_code"]
    assert report["status"] == outcome and report["job_id"] == "job-1"
    assert report["error_type"] == {"CANCELLED": "job_cancelled", "TIMED_OUT": "job_timed_out"}[outcome]


def test_run_json_of_a_failure_carries_the_worker_error_fields(
    endpoint: FakeEndpoint, tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentence = "ComfyUI rejected the workflow: node 2 (SaveImage) input 'images': required input is missing"
    details = {"node_errors": [{"node_id": "2", "input": "images", "type": "required_input_missing"}]}
    endpoint.plan(
        JobPlan(
            outcome="FAILED",
            error=sentence,
            output={"error": sentence, "error_type": "workflow_validation_failed", "details": details},
        )
    )
    exit_code, out, err = _run(endpoint, capsys, str(tiny_file), "--out", str(tmp_path / "o"), "--json")
    assert exit_code == ExitCode.INVALID and err == ""
    assert json.loads(out) == {
        "job_id": "job-1",
        "status": "FAILED",
        "error": sentence,
        "error_type": "workflow_validation_failed",
        "details": details,
        "exit_code": 3,
    }


def test_a_corrupted_output_is_not_saved(
    endpoint: FakeEndpoint, tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    item = image_item("9", "a.png", PNG, sha256="0" * 64)
    endpoint.plan(JobPlan(output=success(item)))
    exit_code, _, err = _run(endpoint, capsys, str(tiny_file), "--out", str(tmp_path / "o"))
    assert exit_code == ExitCode.FAILED
    assert "output a.png of node 9 does not match the sha256 the worker reported" in err
    assert list((tmp_path / "o").iterdir()) == []


def test_a_refused_key_means_the_endpoint_is_unavailable(
    tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "wrong")
    with FakeEndpoint() as server:
        code = main(["run", str(tiny_file), "--local", server.url, "--out", str(tmp_path / "o")])
        assert code == ExitCode.UNAVAILABLE
        assert "was refused (HTTP 401: Unauthorized): check the API key" in capsys.readouterr().err
        monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
        assert main(["run", str(tiny_file), "--local", server.url, "--out", str(tmp_path / "o")]) == 0
        assert server.submissions == 1


def test_status_shows_progress_then_the_result_and_saves_it(
    endpoint: FakeEndpoint, tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.plan(JobPlan(progress=[RUNNING], output=success(image_item("9", "a.png", PNG))))
    job_id = EndpointClient(base_url=endpoint.url).submit({"workflow": workflow("tiny_image")}).id

    assert main(["status", job_id, "--local", endpoint.url]) == 0
    assert capsys.readouterr().out == f"job {job_id}: IN_PROGRESS: node 3 (KSampler), step 12/30, 48.9%\n"
    assert main(["status", job_id, "--local", endpoint.url, "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out == (
        f"job {job_id}: COMPLETED; outputs: 9_a.png\n  saved {tmp_path / 'o' / '9_a.png'}\n"
    )
    assert (tmp_path / "o" / "9_a.png").read_bytes() == PNG


def test_status_of_a_failed_job_exits_with_its_code(
    endpoint: FakeEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    sentence = "Node 7 (KSampler) failed: RuntimeError: CUDA out of memory"
    endpoint.plan(JobPlan(outcome="FAILED", error=sentence, output={"error_type": "execution_error"}))
    job_id = EndpointClient(base_url=endpoint.url).submit({"workflow": workflow("tiny_image")}).id
    assert main(["status", job_id, "--local", endpoint.url, "--json"]) == ExitCode.FAILED
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "FAILED" and report["exit_code"] == 4
    assert (report["error"], report["error_type"]) == (sentence, "execution_error")
    assert main(["status", "job-404", "--local", endpoint.url]) == ExitCode.UNAVAILABLE
    assert "job job-404 is unknown to the endpoint" in capsys.readouterr().err


def test_cancel_reports_the_new_state(endpoint: FakeEndpoint, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint.plan(JobPlan(hold=True))
    job_id = EndpointClient(base_url=endpoint.url).submit({"workflow": workflow("tiny_image")}).id
    assert main(["cancel", job_id, "--local", endpoint.url]) == 0
    assert capsys.readouterr().out == f"job {job_id}: CANCELLED\n"
    assert main(["status", job_id, "--local", endpoint.url, "--json"]) == ExitCode.CANCELLED
    assert json.loads(capsys.readouterr().out)["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (WaitTimeout("job j did not end within 5 s", job_id="j", last_status="IN_QUEUE"), ExitCode.TIMED_OUT),
        (ServiceUnavailable("POST /run failed: HTTP 503"), ExitCode.UNAVAILABLE),
        (SubmitUncertain("lost", input_digest="d"), ExitCode.UNAVAILABLE),
        (InputTooLarge("the job input is 12 MB"), ExitCode.INVALID),
        (OutputDownloadFailed("downloading output a.png failed: HTTP 403"), ExitCode.FAILED),
        (CommandError("cannot read workflow x.json"), ExitCode.ERROR),
    ],
)
def test_client_side_failures_have_their_codes(error: Exception, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_json_mode_reports_command_errors_as_json(
    tiny_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tiny_file), "--param", "seed", "--local", "http://127.0.0.1:9", "--json"]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "error": "--param 'seed': expected NODE.INPUT=VALUE",
        "error_type": "usage",
        "exit_code": 2,
    }
    assert main(["validate", str(tiny_file), "--comfy-url", "http://127.0.0.1:9", "--json"]) == 7
    report = json.loads(capsys.readouterr().out)
    assert (report["error_type"], report["exit_code"]) == ("unavailable", 7)
    assert report["error"].startswith("cannot read http://127.0.0.1:9/object_info")
