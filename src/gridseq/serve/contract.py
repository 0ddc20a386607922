"""The OpenAPI document the server publishes, made to tell the truth about each served model.

One `POST /models/<name>/predict` operation per served model, each with its own request schema: the
options its task declares (`Task.options`, with the ranges `Task.check_options` enforces) and inputs
of the shapes its data kind takes (an 8x8 digits CNN takes (1, 8, 8), (8, 8), (8, 8, 1) or 64 numbers;
a char-level text model takes non-empty strings of at most `max_chars` characters). Every operation
lists every status it can return (400, 401 with a token, 404, 413, 415, 422, 503) with the error
model, and the bearer scheme is declared when the server has a token.

A sequence model's request is a list of variable-length sequences, each holding only its valid steps, so
every sequence carries its own length and no constraint between fields is needed. The older form with a
`lengths` list beside `inputs` (`lengths[i]` cuts `inputs[i]` to its valid steps) is still accepted and
documented, but is not part of the exact schema: `lengths[i] <= len(inputs[i])` and one length per input
are constraints between fields that JSON Schema cannot state, so a schema listing `lengths` would call
requests valid that the server refuses.

What JSON Schema cannot say is said in the description: base64 image strings and the `lengths` form are
accepted besides what the schema lists (the first's validity is the image decoder's to judge, the
second's is the cross-field rule above).
"""

from __future__ import annotations

from typing import Any

from gridseq.data.audio import MAX_SAMPLE
from gridseq.data.vocab import SPECIALS, Vocab
from gridseq.tasks.base import Task
from gridseq.tasks.inputs import MAX_BEAM, MAX_VALUE, layout, value_bounds
from gridseq.tasks.lm import LMTask
from gridseq.tasks.transcribe import TranscribeTask

_CLEAN_KEEPS_NON_SPACE = ("none", "squeeze", "tweet", "date")  # cleaning rules that drop whitespace only (and _CLEAN_DROPS)
_CLEAN_DROPS = {"date": "\\u200e\\u200f\\u061c"}  # the "date" rule's removed marks, as regex escapes
# the characters str.isspace() calls whitespace, as a regex character class body
_PY_SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
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
    if isinstance(predictor.task, LMTask):
        return _prompt_schema(record, limits)
    if isinstance(predictor.task, TranscribeTask):
        return _transcribe_schema(record, limits)
    if not predictor.task.batchable or type(predictor.task).prepare is not Task.prepare:
        return None  # the task reads its inputs its own way
    if kind == "tokens":
        rule = record.get("clean", "none")
        if rule not in _CLEAN_KEEPS_NON_SPACE:
            return None  # a rule that drops more than whitespace (punctuation, parentheses): not expressible
        # at least one character cleaning keeps: not Python's whitespace (listed: JSON Schema's \s differs,
        # e.g. on U+FEFF), nor, for dates, the direction marks the "date" rule removes
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": f"[^{_PY_SPACE}{_CLEAN_DROPS.get(rule, '')}]",
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
    if kind == "video":
        return _video_schema(record)
    if kind == "sequence":
        seq = record.get("sequence", {})
        f, fixed = int(seq.get("features", info.num_features)), seq.get("length")
        bounds = value_bounds(info)  # what the normalisation keeps finite: the server checks the same
        number = _NUMBER if bounds is None else {"type": "number", "minimum": bounds[0], "maximum": bounds[1]}
        step = {"type": "array", "items": number, "minItems": f, "maxItems": f}
        steps = {"type": "array", "items": step, "minItems": int(fixed or 1)}
        if fixed or limits.max_length is not None:
            steps["maxItems"] = int(fixed or limits.max_length)
        variants = [steps]
        if f == 1:
            variants.append({**steps, "items": number})
        return {"anyOf": variants, "description": f"a sequence of steps of {f} number(s)" + ("" if fixed else ", any length")}
    return None


def _prompt_schema(record: dict, limits) -> dict[str, Any] | None:
    """A language model's prompt: any text ("" starts from a new line) of at most `max_chars` characters;
    None for word-level vocabularies, whose token limit a character count cannot state."""
    if (record.get("vocab") or {}).get("level", "char") != "char":
        return None
    # the empty prompt, or one holding a character the vocabulary knows (the others are skipped)
    known = sorted(t for t in Vocab.from_json(record["vocab"]).tokens[len(SPECIALS):] if len(t) == 1)
    pattern = "^$|[" + "".join("\\" + t if t in "\\]^-[" else t for t in known) + "]"
    schema: dict[str, Any] = {"type": "string", "pattern": pattern,
                              "description": "a prompt to continue: empty, or holding a character of the model's vocabulary"}
    if limits.max_chars is not None:
        schema["maxLength"] = min(limits.max_chars, limits.max_length or limits.max_chars)
    return schema


def _transcribe_schema(record: dict, limits) -> dict[str, Any] | None:
    """Audio transcription: a mono waveform (S,) at the run's sample rate, at most the samples that make
    `max_length` frames; None for handwriting (image) transcribers."""
    spec = record.get("audio")
    if record.get("layout") != "audio" or not spec:
        return None
    sample = {"type": "number", "minimum": -MAX_SAMPLE, "maximum": MAX_SAMPLE}
    schema: dict[str, Any] = {"type": "array", "items": sample, "minItems": 1,
                              "description": f"a mono waveform (S,) at {spec['sample_rate']} Hz"}
    if limits.max_length is not None:  # frames = 1 + S // hop (centred STFT): at most max_length
        schema["maxItems"] = limits.max_length * int(spec["hop_length"]) - 1
    return schema


def _video_schema(record: dict) -> dict[str, Any]:
    """A clip of any number of frames, (T, H, W) or (T, H, W, C), pixels in [0, 1]; C is the model's
    channels, or 3 / 4 (RGB, RGBA: converted) for a grayscale model and 4 (alpha dropped) for an RGB one.
    File paths are not part of the contract."""
    video = record.get("video", {})
    c, (h, w) = int(video["channels"]), video["size"]
    pixel = {"type": "number", "minimum": 0, "maximum": 1}

    def clip(frame: tuple[int, ...]) -> dict[str, Any]:
        schema: dict[str, Any] = pixel
        for n in reversed(frame):
            schema = {"type": "array", "items": schema, "minItems": n, "maxItems": n}
        return {"type": "array", "items": schema, "minItems": 1}

    channels = (1, 3, 4) if c == 1 else (3, 4) if c == 3 else (c,)
    variants = ([clip((h, w))] if c == 1 else []) + [clip((h, w, k)) for k in channels]
    return {"anyOf": variants, "description": f"a clip of T frames of {h}x{w}, ({'T, H, W) or (' if c == 1 else ''}T, H, W, C), "
                                              "pixels in [0, 1]"}


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
    body = {"type": "object", "title": f"PredictRequest for {predictor.name}", "properties": props, "required": ["inputs"],
            "additionalProperties": False}
    if layout(predictor.info) == "sequence":  # each sequence carries its own length (see the module's docstring)
        inputs["description"] = "variable-length sequences, each holding only its valid steps"
        body["description"] = ('Each input holds only its valid steps. Also accepted, outside this schema: '
                               '{"inputs": [...], "lengths": [...]} with one length per input, lengths[i] at most the '
                               'steps inputs[i] holds, cutting it to that many (JSON Schema cannot state that rule).')
    return body


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
