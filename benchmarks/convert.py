"""How long converting an editor workflow takes, next to what a job already spends.

Converts each of the 205 core templates of comfyui-workflow-templates 0.7.67 (the recorded corpus of
tests/unit/workflows/test_frontend_corpus.py) with ComfyUI 0.8.0's /object_info, --repeat times each,
and prints the distribution per template, the largest templates, and, for scale, the time to parse
/object_info once per boot and to copy a template's JSON (what any job on that workflow pays anyway).

Usage: python benchmarks/convert.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import gc
import importlib.resources
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from comfy_serverless.workflows.editor import editor_to_prompt  # noqa: E402
from comfy_serverless.workflows.object_info import ObjectInfo  # noqa: E402

OBJECT_INFO = REPO.parent / "shared" / "comfyui-reference" / "transcripts" / "object_info.json"
RECORDINGS = REPO / "tests" / "fixtures" / "frontend_prompts" / "templates"


def _templates() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(RECORDINGS.glob("*.json")):
        package, _, name = json.loads(path.read_text())["source"].partition("/")
        text = (importlib.resources.files(package) / "templates" / name).read_text()
        found.append((path.stem, json.loads(text)))
    return found


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(ordered) * 1000:8.2f} {p90 * 1000:8.2f} {ordered[-1] * 1000:8.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    raw_text = OBJECT_INFO.read_text()
    parse: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        info = ObjectInfo(json.loads(raw_text))
        for name in info.class_names():
            info.get(name)
        parse.append(time.perf_counter() - started)

    templates = _templates()
    per_template: dict[str, list[float]] = {}
    copies: dict[str, list[float]] = {}
    sizes = {name: sum(1 for _ in workflow.get("nodes", [])) for name, workflow in templates}
    for _ in range(args.repeat):
        for name, workflow in templates:
            started = time.perf_counter()
            editor_to_prompt(workflow, info)
            per_template.setdefault(name, []).append(time.perf_counter() - started)
            started = time.perf_counter()
            json.loads(json.dumps(workflow))
            copies.setdefault(name, []).append(time.perf_counter() - started)

    # The same conversions with the garbage collector paused: a full collection walks every live
    # object (the parsed /object_info included) and lands on the same templates every round.
    paused: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for _, workflow in templates:
            started = time.perf_counter()
            editor_to_prompt(workflow, info)
            paused.append(time.perf_counter() - started)
    finally:
        gc.enable()

    medians = {name: statistics.median(samples) for name, samples in per_template.items()}
    every = [sample for samples in per_template.values() for sample in samples]
    every_copy = [sample for samples in copies.values() for sample in samples]
    print(f"{len(templates)} templates x {args.repeat} conversions each (ms)")
    print(f"{'what':<44} {'median':>8} {'p90':>8} {'max':>8}")
    print(f"{'convert one template (all conversions)':<44} {_ms(every)}")
    print(f"{'  the same, garbage collector paused':<44} {_ms(paused)}")
    print(f"{'copy its JSON (json.loads(json.dumps))':<44} {_ms(every_copy)}")
    print(f"{'parse /object_info, once per ComfyUI boot':<44} {_ms(parse)}")
    print()
    print("slowest templates (median ms, root nodes, ratio to copying their JSON)")
    for name in sorted(medians, key=medians.get, reverse=True)[:5]:  # type: ignore[arg-type]
        ratio = medians[name] / statistics.median(copies[name])
        print(f"  {name:<42} {medians[name] * 1000:7.2f}  {sizes[name]:4d}  x{ratio:.1f}")


if __name__ == "__main__":
    main()
