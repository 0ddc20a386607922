"""The OpenAPI document the server publishes, made to tell the truth about each served model.

One `POST /models/<name>/predict` operation per served model, each with its own request schema: the
options its task declares (`Task.options`, with the ranges `Task.check_options` enforces) and inputs
of the shapes its data kind takes (an 8x8 digits CNN takes (1, 8, 8), (8, 8), (8, 8, 1) or 64 numbers;
a char-level text model takes non-empty strings of at most `max_chars` characters). Every operation
lists every status it can return (400, 401 with a token, 404, 413, 415, 422, 503) with the error
model, and the bearer scheme is declared when the server has a token.

What JSON Schema cannot say is said in the description: base64 image strings are accepted besides the
arrays (their validity is the image decoder's to judge, so they are left out of the schema), and a
sequence's `lengths[i]` may not exceed the steps `inputs[i]` holds.
"""

from __future__ import annotations

from typing import Any

from gridseq.tasks.base import Task
from gridseq.tasks.inputs import MAX_BEAM, MAX_VALUE, layout

_CLEAN_KEEPS_NON_SPACE = ("none", "squeeze", "tweet")  # text cleaning rules that only collapse whitespace
_BY_TYPE = {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"}}
_NUMBER = {"type": "number", "minimum": -MAX_VALUE, "maximum": MAX_VALUE}


def _array(shape: tuple[int, ...]) -> dict[str, Any]:
    """Nested JSON arrays of numbers of exactly `shape`."""
    schema: dict[str, Any] = _NUMBER
    for n in reversed(shape):
        schema = {"type": "array", "items": schema, "minItems": n, "maxItems": n}
    return schema


def input_schema(predictor) -> dict[str, Any] | None:
    """The JSON schema of one input item of `predictor`'s model, or None where it has none more exact
    than the generic request model (video, audio, forecasting histories, language-model prompts, any-size images)."""
    info, limits = predictor.info, predictor.limits
    record = info.preprocessing or {}
    kind = layout(info)
    if not predictor.task.batchable or type(predictor.task).prepare is not Task.prepare:
        return None  # the task reads its inputs its own way
    if kind == "tokens":
        if record.get("clean", "none") not in _CLEAN_KEEPS_NON_SPACE:
            return None  # a rule that drops more than whitespace (punctuation, parentheses): not expressible
        # at least one character that is not whitespace (Python's: \x1c-\x1f and \x85 too), which cleaning keeps
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": r"[^\s\x1c-\x1f\x85]",
                                  "description": "text with at least one character that is not whitespace"}
        if limits.max_chars is not None:
            schema["maxLength"] = limits.max_chars
        return schema
    if kind == "image":
        image = record.get("image", {})
        c, (h, w) = int(image["channels"]), image["size"]
        shapes = [(c, h, w), (h, w, c), (c * h * w,)] + ([(h, w)] if c == 1 else [])
        return {"anyOf": [_array(s) for s in shapes],
                "description": f"an image as numbers in the dataset's raw units: ({c}, {h}, {w}), ({h}, {w}, {c}), "
                               f"{c * h * w} flat" + (f" or ({h}, {w})" if c == 1 else "") + "; or a base64 PNG/JPEG/BMP/GIF "
                               "string (accepted, but not part of this schema: only the decoder can tell a valid image)"}
    if kind == "sequence":
        seq = record.get("sequence", {})
        f, fixed = int(seq.get("features", info.num_features)), seq.get("length")
        step = _array((f,))
        steps = {"type": "array", "items": step, "minItems": int(fixed or 1)}
        if fixed or limits.max_length is not None:
            steps["maxItems"] = int(fixed or limits.max_length)
        variants = [steps]
        if f == 1:
            variants.append({**steps, "items": _NUMBER})
        return {"anyOf": variants, "description": f"a sequence of steps of {f} number(s)" + ("" if fixed else ", any length")}
    return None


def options_schema(predictor) -> dict[str, Any]:
    """The options `predictor`'s task accepts, with the ranges it enforces."""
    limit = predictor.limits.max_generate
    known = {
        "top_k": {"type": "integer", "minimum": 1, "description": "report the k most likely classes or tokens"},
        "invert": {"type": "boolean", "description": "images: use 1 - pixel (dark ink on light paper)"},
        "beam": {"type": "integer", "minimum": 1, "maximum": MAX_BEAM, "description": "beam width (1 = greedy)"},
        "length": {"type": "integer", "minimum": 1, **({"maximum": limit} if limit else {}), "description": "tokens to generate"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 100, "description": "sampling temperature (0 = most likely token)"},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "description": "seed the sampler (same seed, same text)"},
        "steps": {"type": "integer", "minimum": 1, **({"maximum": limit} if limit else {}), "description": "steps to forecast"},
    }
    props = {}
    for key, default in predictor.options.items():
        schema = known.get(key) or _BY_TYPE.get(type(default), {})  # an option of a task's own: its default's type
        props[key] = {"anyOf": [schema, {"type": "null"}], "default": default}
    return {"type": "object", "properties": props, "additionalProperties": False}


def request_schema(predictor) -> dict[str, Any] | None:
    """The request body schema of `POST /models/<name>/predict` for `predictor`, or None (use the generic one)."""
    item = input_schema(predictor)
    if item is None:
        return None
    limits = predictor.limits
    inputs: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
    if limits.max_items is not None:
        inputs["maxItems"] = limits.max_items
    props: dict[str, Any] = {"inputs": inputs, "options": options_schema(predictor)}
    if layout(predictor.info) == "sequence":
        length = {"type": "integer", "minimum": 1, **({"maximum": limits.max_length} if limits.max_length else {})}
        props["lengths"] = {"anyOf": [{"type": "array", "items": length}, {"type": "null"}],
                            "description": "valid steps of each input, one per input, each at most the steps it holds"}
    return {"type": "object", "title": f"PredictRequest for {predictor.name}", "properties": props, "required": ["inputs"],
            "additionalProperties": False}


def model_operations(schema: dict[str, Any], models: dict) -> dict[str, Any]:
    """`/models/<name>/predict` paths for the served `models` whose requests have an exact schema, each a
    copy of the generic operation in `schema` with its own request body (added to the components). The
    generic `/models/{name}/predict` stays only for models without one, and is dropped when there are none
    (a schema-driven client or fuzzer would otherwise send it generic bodies for an exact model)."""
    generic = schema["paths"]["/models/{name}/predict"]["post"]
    out = {}
    for name, served in models.items():
        body = request_schema(served.predictor) if served.predictor is not None else None
        if body is None:
            continue
        ref = f"PredictRequest_{''.join(c if c.isalnum() else '_' for c in name)}"
        schema["components"]["schemas"][ref] = body
        op = {**generic, "operationId": f"predict_{ref.removeprefix('PredictRequest_')}", "summary": f"Predict with {name}",
              "parameters": [], "description": f"{generic.get('description', '')}\n\n{name}: a {served.predictor.info.task} model."
                                               " The request schema lists exactly what it takes.",
              "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}}
        op["responses"] = {k: v for k, v in generic["responses"].items() if k != "404"}
        out[f"/models/{name}/predict"] = {"post": op}
    rest = sorted(set(models) - {path.split("/")[2] for path in out})
    if not rest:  # every model has its own operation: the generic one would describe none of them
        del schema["paths"]["/models/{name}/predict"]
    else:  # the generic operation is for the models without an exact schema (and unknown names: 404)
        for param in generic.get("parameters", []):
            if param.get("name") == "name" and out:
                param["description"] = "a served model without its own operation: " + ", ".join(rest)
    return out
