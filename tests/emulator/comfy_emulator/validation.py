"""POST /prompt validation, driven by the node catalogue (object_info.json).

Every error shape here is taken from 12_validation_errors (400 bodies) and 13_partially_invalid (200 with
``node_errors``).  Notable recorded quirks that are reproduced on purpose:

* A bad link inside an upstream node is reported on the *upstream* node, but with the input name, the
  ``input_config`` and the ``linked_node`` of the node that linked to it (12: broken_bad_link reports node
  "2" with ``input_name: "images"`` and ``linked_node: ["2", 0]``).
* ``error.details`` only lists the *output* nodes' own errors (12: missing_required_input says
  ``Required input is missing: filename_prefix`` although node 2 also misses ``image``).
* ``dependent_outputs`` of an already failed node grows with every later failing output, even an
  unrelated one (12: broken_multiple_errors gives node "1" ``dependent_outputs: ["2", "4"]``).
* Values are converted in place (INT/FLOAT/STRING/BOOLEAN), so /history shows the converted prompt.
* Choice lists longer than 20 entries are not echoed: ``input_config`` is ``None`` and the details say
  ``(list of length N)``.

Profile "0.38" (``newer=True``) follows the newer ``execution.py`` @04e2a91433 (spec section 2):
``missing_node_type`` instead of ``invalid_prompt`` (L1157, L1174), a clean ``dependency_cycle`` error on
every node of a cycle (L862) instead of 0.8.0's runaway recursion, ``repr()`` in ``value_not_in_list``
details (L1086), multiselect combos and unchecked ``remote_combo`` options (L1063), and the new wording of
``bad_linked_input`` (L932).  Loop validation (``validate_loops``) is not emulated: the catalogue (0.8.0's
object_info.json) has no loop nodes.
"""

from __future__ import annotations

from typing import Any

from .catalog import CUSTOM_VALIDATED, Catalog
from .folders import FolderPaths

# Traceback frames exactly as recorded in 12_validation_errors (paths rewritten to /opt/ComfyUI there).
TB_RECURSE = (
    '  File "/opt/ComfyUI/execution.py", line 838, in validate_inputs\n'
    "    r = await validate_inputs(prompt_id, prompt, o_id, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)
TB_CLASS_LOOKUP = (
    '  File "/opt/ComfyUI/execution.py", line 818, in validate_inputs\n'
    "    o_class_type = prompt[o_id]['class_type']\n"
    "                   ~~~~~~^^^^^^\n"
)
TB_RETURN_INDEX = (
    '  File "/opt/ComfyUI/execution.py", line 820, in validate_inputs\n'
    "    received_type = r[val[1]]\n"
    "                    ~^^^^^^^^\n"
)
# Guessed frames (not in the transcripts): a failure in an output node's own inputs, a node without
# an "inputs" key, any other exception inside validate_inputs.
TB_VALIDATE_PROMPT = (
    '  File "/opt/ComfyUI/execution.py", line 1082, in validate_prompt\n'
    "    m = await validate_inputs(prompt_id, prompt, o, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)
TB_INPUTS = (
    '  File "/opt/ComfyUI/execution.py", line 763, in validate_inputs\n'
    "    inputs = prompt[unique_id]['inputs']\n"
    "             ~~~~~~~~~~~~~~~~~^^^^^^^^^^\n"
)
TB_GENERIC = '  File "/opt/ComfyUI/execution.py", line 905, in validate_inputs\n'

WILDCARD_TYPES = frozenset({"*", "COMFY_MATCHTYPE_V3", "COMFY_AUTOGROW_V3", "COMFY_DYNAMICCOMBO_V3"})


class _ValidationException(Exception):
    """An exception raised while validating, with the (synthetic) traceback frames to report."""

    def __init__(self, exc: BaseException, frames: list[str]) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.frames = frames


def full_type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def is_link(value: Any) -> bool:
    return isinstance(value, list)


def types_compatible(received: Any, wanted: Any) -> bool:
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    if got & WILDCARD_TYPES or want & WILDCARD_TYPES:
        return True
    return bool(got & want)


ValidationResult = tuple[bool, list[dict[str, Any]], Any]


class Validator:
    def __init__(self, catalog: Catalog, folders: FolderPaths, newer: bool = False) -> None:
        self.catalog = catalog
        self.folders = folders
        self.newer = newer

    # ------------------------------------------------------------------ prompt level
    def validate_prompt(
        self, prompt: Any, partial_targets: list[str] | None = None
    ) -> tuple[bool, dict[str, Any] | None, list[str], dict[str, Any]]:
        """Returns (ok, error, outputs_to_execute, node_errors).  Raises (-> HTTP 500) where real
        ComfyUI raises, e.g. for a prompt that is a list (12: "prompt is a list")."""
        outputs: list[str] = []
        for node_id in prompt:
            node = prompt[node_id]
            if "class_type" not in node:
                if self.newer:
                    return False, self._missing_node_type(node_id, node, None), [], {}
                return (
                    False,
                    {
                        "type": "invalid_prompt",
                        "message": "Cannot execute because a node is missing the class_type property.",
                        "details": f"Node ID '#{node_id}'",
                        "extra_info": {},
                    },
                    [],
                    {},
                )
            class_type = node["class_type"]
            hash(class_type)  # unhashable class_type -> TypeError -> 500, as in ComfyUI
            if class_type not in self.catalog:
                if self.newer:
                    return False, self._missing_node_type(node_id, node, class_type), [], {}
                return (
                    False,
                    {
                        "type": "invalid_prompt",
                        "message": f"Cannot execute because node {class_type} does not exist.",
                        "details": f"Node ID '#{node_id}'",
                        "extra_info": {},
                    },
                    [],
                    {},
                )
            if self.catalog.is_output_node(class_type) and (
                partial_targets is None or node_id in partial_targets
            ):
                outputs.append(node_id)

        if not outputs:
            return (
                False,
                {
                    "type": "prompt_no_outputs",
                    "message": "Prompt has no outputs",
                    "details": "",
                    "extra_info": {},
                },
                [],
                {},
            )

        good_outputs: list[str] = []
        errors: list[tuple[str, list[dict[str, Any]]]] = []
        node_errors: dict[str, Any] = {}
        validated: dict[Any, ValidationResult] = {}
        for output_id in outputs:
            try:
                result = self.validate_inputs(prompt, output_id, validated, [])
                valid, reasons = result[0], result[1]
            except _ValidationException as failure:
                valid = False
                reasons = [
                    {
                        "type": "exception_during_validation",
                        "message": "Exception when validating node",
                        "details": str(failure.exc),
                        "extra_info": {
                            "exception_type": full_type_name(failure.exc),
                            "traceback": [TB_VALIDATE_PROMPT, *failure.frames],
                        },
                    }
                ]
                validated[output_id] = (False, reasons, output_id)

            if valid is True:
                good_outputs.append(output_id)
                continue
            if reasons:
                errors.append((output_id, reasons))
            for node_id, (node_valid, node_reasons, _) in validated.items():
                if node_valid is not True and node_reasons:
                    if node_id not in node_errors:
                        node_errors[node_id] = {
                            "errors": node_reasons,
                            "dependent_outputs": [],
                            "class_type": prompt[node_id]["class_type"],
                        }
                    node_errors[node_id]["dependent_outputs"].append(output_id)

        if not good_outputs:
            details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in errors for e in errs)
            return (
                False,
                {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation",
                    "details": details,
                    "extra_info": {},
                },
                [],
                node_errors,
            )
        return True, None, good_outputs, node_errors

    @staticmethod
    def _missing_node_type(node_id: Any, node: Any, class_type: Any) -> dict[str, Any]:
        """newer execution.py @04e2a91433 validate_prompt L1150-1185: the node's title (``_meta.title``)
        names it; without a title, the class (or ``ID #<id>`` when the class is missing too)."""
        meta = node.get("_meta", {}) if isinstance(node, dict) else {}
        meta = meta if isinstance(meta, dict) else {}
        if class_type is None:
            title = meta.get("title")
            message = (
                f"Node '{title or f'ID #{node_id}'}' has no class_type. The workflow may be corrupted or a "
                "custom node is missing."
            )
        else:
            title = meta.get("title", class_type)
            message = f"Node '{title}' not found. The custom node may not be installed."
        return {
            "type": "missing_node_type",
            "message": message,
            "details": f"Node ID '#{node_id}'",
            "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": title},
        }

    # ------------------------------------------------------------------ node level
    def validate_inputs(
        self, prompt: Any, unique_id: Any, validated: dict[Any, ValidationResult], active: list[Any]
    ) -> ValidationResult:
        """``active``: the nodes being validated further up (ComfyUI 0.38's ``visiting`` list)."""
        if unique_id in validated:
            return validated[unique_id]
        if unique_id in active:
            if self.newer:
                return self._cycle(prompt, unique_id, validated, active)
            # 0.8.0 has no cycle check: validate_inputs recurses until Python's recursion limit.
            raise _ValidationException(RecursionError("maximum recursion depth exceeded"), [TB_GENERIC])
        active.append(unique_id)
        try:
            return self._validate_inputs(prompt, unique_id, validated, active)
        except _ValidationException:
            raise
        except Exception as exc:  # anything else behaves like an uncaught exception in ComfyUI
            raise _ValidationException(exc, [TB_GENERIC]) from exc
        finally:
            active.pop()

    @staticmethod
    def _cycle(
        prompt: Any, unique_id: Any, validated: dict[Any, ValidationResult], active: list[Any]
    ) -> ValidationResult:
        """newer execution.py @04e2a91433 L848-876: every node of the cycle gets a ``dependency_cycle``
        error naming the path, e.g. ``3 (ImageInvert) -> 4 (ImageBlur) -> 3 (ImageInvert)``."""
        path = [*active[active.index(unique_id) :], unique_id]
        cycle_nodes = list(dict.fromkeys(path))
        details = " -> ".join(f"{node_id} ({prompt[node_id]['class_type']})" for node_id in path)
        for node_id in cycle_nodes:
            validated[node_id] = (
                False,
                [
                    {
                        "type": "dependency_cycle",
                        "message": "Dependency cycle detected",
                        "details": details,
                        "extra_info": {"node_id": node_id, "cycle_nodes": cycle_nodes},
                    }
                ],
                node_id,
            )
        return validated[unique_id]

    def _validate_inputs(
        self, prompt: Any, unique_id: Any, validated: dict[Any, ValidationResult], active: list[Any]
    ) -> ValidationResult:
        node = prompt[unique_id]
        try:
            inputs = node["inputs"]
        except Exception as exc:
            raise _ValidationException(exc, [TB_INPUTS]) from exc
        class_type = node["class_type"]
        node_def = self.catalog.node_def(class_type)
        custom = CUSTOM_VALIDATED.get(class_type, {})

        errors: list[dict[str, Any]] = []
        valid = True
        for name in self.catalog.valid_input_names(node_def):
            input_type, category, extra = self.catalog.input_spec(node_def, name)
            if name not in inputs:
                if category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": f"{name}",
                            "extra_info": {"input_name": name},
                        }
                    )
                continue

            val = inputs[name]
            info = [input_type, extra]
            if is_link(val):
                if len(val) != 2:
                    errors.append(
                        {
                            "type": "bad_linked_input",
                            "message": self._bad_link_message,
                            "details": f"{name}",
                            "extra_info": {"input_name": name, "input_config": info, "received_value": val},
                        }
                    )
                    continue
                o_id = val[0]
                try:
                    o_class_type = prompt[o_id]["class_type"]
                except Exception as exc:
                    raise _ValidationException(exc, [TB_CLASS_LOOKUP]) from exc
                returns = self.catalog.return_types(o_class_type)
                try:
                    received_type = returns[val[1]]
                except Exception as exc:
                    raise _ValidationException(exc, [TB_RETURN_INDEX]) from exc
                if not types_compatible(received_type, input_type):
                    details = f"{name}, received_type({received_type}) mismatch input_type({input_type})"
                    errors.append(
                        {
                            "type": "return_type_mismatch",
                            "message": "Return type mismatch between linked nodes",
                            "details": details,
                            "extra_info": {
                                "input_name": name,
                                "input_config": info,
                                "received_type": received_type,
                                "linked_node": val,
                            },
                        }
                    )
                    continue
                try:
                    inner = self.validate_inputs(prompt, o_id, validated, active)
                    if inner[0] is False:
                        valid = False
                        continue
                except _ValidationException as failure:
                    valid = False
                    validated[o_id] = (
                        False,
                        [
                            {
                                "type": "exception_during_inner_validation",
                                "message": "Exception when validating inner node",
                                "details": str(failure.exc),
                                "extra_info": {
                                    "input_name": name,
                                    "input_config": info,
                                    "exception_message": str(failure.exc),
                                    "exception_type": full_type_name(failure.exc),
                                    "traceback": [TB_RECURSE, *failure.frames],
                                    "linked_node": val,
                                },
                            }
                        ],
                        o_id,
                    )
                    continue
                continue

            # constant value
            try:
                if isinstance(val, dict) and "__value__" in val:
                    val = val["__value__"]
                    inputs[name] = val
                if input_type == "INT":
                    val = int(val)
                    inputs[name] = val
                if input_type == "FLOAT":
                    val = float(val)
                    inputs[name] = val
                if input_type == "STRING":
                    val = str(val)
                    inputs[name] = val
                if input_type == "BOOLEAN":
                    val = bool(val)
                    inputs[name] = val
            except Exception as exc:
                errors.append(
                    {
                        "type": "invalid_input_type",
                        "message": f"Failed to convert an input value to a {input_type} value",
                        "details": f"{name}, {val}, {exc}",
                        "extra_info": {
                            "input_name": name,
                            "input_config": info,
                            "received_value": val,
                            "exception_message": str(exc),
                        },
                    }
                )
                continue

            if name in custom:
                continue
            if "min" in extra and val < extra["min"]:
                errors.append(
                    {
                        "type": "value_smaller_than_min",
                        "message": "Value {} smaller than min of {}".format(val, extra["min"]),
                        "details": f"{name}",
                        "extra_info": {"input_name": name, "input_config": info, "received_value": val},
                    }
                )
                continue
            if "max" in extra and val > extra["max"]:
                errors.append(
                    {
                        "type": "value_bigger_than_max",
                        "message": "Value {} bigger than max of {}".format(val, extra["max"]),
                        "details": f"{name}",
                        "extra_info": {"input_name": name, "input_config": info, "received_value": val},
                    }
                )
                continue
            if isinstance(input_type, list) or input_type == "COMBO":
                if self.newer and input_type == "COMBO" and extra.get("remote_combo"):
                    continue  # newer L1063: options are fetched by the frontend, not checked here
                options = input_type if isinstance(input_type, list) else extra.get("options", [])
                if self.newer and extra.get("multiselect", False) and isinstance(val, list):
                    invalid = [v for v in val if v not in options]
                else:
                    invalid = [val] if val not in options else []
                if invalid:
                    input_config: Any = info
                    if len(options) > 20:
                        list_info = f"(list of length {len(options)})"
                        input_config = None
                    else:
                        list_info = str(options)
                    if self.newer:  # newer L1086: repr() of each invalid value
                        shown = ", ".join(repr(v) for v in invalid)
                        details = f"{name}: {shown} not in {list_info}"
                    else:
                        details = f"{name}: '{val}' not in {list_info}"
                    errors.append(
                        {
                            "type": "value_not_in_list",
                            "message": "Value not in list",
                            "details": details,
                            "extra_info": {
                                "input_name": name,
                                "input_config": input_config,
                                "received_value": val,
                            },
                        }
                    )
                    continue

        # Custom validation (VALIDATE_INPUTS) of file inputs, e.g. LoadImage (12: broken_missing_image_file).
        for name, template in custom.items():
            if name not in inputs or is_link(inputs[name]):
                continue
            value = inputs[name]
            if not isinstance(value, str) or not self.folders.exists_annotated_filepath(value):
                errors.append(
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": f"{name} - {template.format(value)}",
                        "extra_info": {"input_name": name},
                    }
                )

        result: ValidationResult = (
            (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
        )
        if self.newer and unique_id in validated:
            # newer L1136-1142: a cycle found further down already put an error on this node; join them.
            earlier = validated[unique_id]
            result = (
                bool(earlier[0]) and valid is True and not errors,
                earlier[1] + [e for e in errors if e not in earlier[1]],
                unique_id,
            )
        validated[unique_id] = result
        return result

    @property
    def _bad_link_message(self) -> str:
        if self.newer:  # newer L932
            return "Bad linked input, must be a length-2 list of [node_id, slot_index]"
        return "Bad linked input, must be a length-2 list of [string, int]"
