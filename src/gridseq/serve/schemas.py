"""The request and response bodies of the HTTP API, as pydantic models (they also make the OpenAPI schema).

Requests are parsed straight from the raw body (`parse_predict`), so every malformed payload — not
UTF-8, not JSON, NaN or Infinity, nested too deeply, wrong types — becomes a 4xx with a message.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator
from typing_extensions import TypeAliasType

from gridseq.errors import DataError

Number = Annotated[float, Strict()]  # JSON numbers only: no strings, no booleans
NestedNumbers = TypeAliasType("NestedNumbers", Union[Number, list["NestedNumbers"]])
Input = Union[str, NestedNumbers]


class PredictOptions(BaseModel):
    """Task options; each task reads its own (see `GET /models`) and rejects the others (422, from
    `Task.check_options`, which also checks the options a task declares beyond the fields listed here)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    top_k: int | None = Field(None, ge=1, description="classify / tag / lm: report the k most likely classes or tokens")
    invert: bool | None = Field(None, description="image classify: use 1 - pixel (dark ink on light paper)")
    beam: int | None = Field(None, ge=1, description="seq2seq and caption: beam width (1 = greedy)")
    length: int | None = Field(None, ge=1, description="lm: tokens to generate")
    temperature: float | None = Field(None, ge=0, description="lm: sampling temperature (0 = most likely token)")
    seed: int | None = Field(None, description="lm: seed the sampler (same seed, same text)")
    steps: int | None = Field(None, ge=1, description="forecast: steps to forecast (default: the model's horizon)")

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value, info):
        """JSON's own types only, as the schema says: 0 is not false and "3" is not 3 (3.0 is 3, as in JSON Schema)."""
        if info.field_name == "invert":
            if value is not None and not isinstance(value, bool):
                raise ValueError("should be true or false")
        elif isinstance(value, (bool, str)):
            raise ValueError("should be a number")
        return value


class PredictRequest(BaseModel):
    """`{"inputs": [...], "lengths": [...]?, "options": {...}?}` — one entry of `inputs` per item."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [
        {"inputs": [[[0, 0, 5, 13, 9, 1, 0, 0]] * 8]},
        {"inputs": [[[0.1, 0.2], [0.3, 0.1], [0.0, -0.4]]], "lengths": [2]},
        {"inputs": ["Nakamura", "Schmidt"], "options": {"top_k": 3}},
    ]})

    inputs: list[Input] = Field(min_length=1, description=(
        "images: nested arrays (C, H, W) / (H, W) / (H, W, C) in the dataset's raw units, or base64 PNG/JPEG "
        "strings; sequences: (T, F) or (T,) arrays; text: strings; forecasting: histories (N, F) or (N,)"))
    lengths: list[Annotated[int, Strict()]] | None = Field(None, description=(
        "sequences, the older form: valid steps of each input (the rest is padding); or send each sequence cut to its valid steps"))
    options: PredictOptions = Field(default_factory=PredictOptions)


class PredictResponse(BaseModel):
    """Predictions in the order of the inputs, plus task-specific fields."""

    model: str
    task: str
    predictions: list[Any] = Field(description=(
        "classify: class name; tag: a class per step; regress: {target: value}; seq2seq / lm: text; "
        "forecast: (steps,) or (steps, targets) values"))
    probabilities: list[Any] | None = Field(None, description="classify: {class: p}; tag: a {class: p} per step")
    targets: list[str] | None = Field(None, description="forecast: the target series, in the order of the values")


class ErrorResponse(BaseModel):
    """Every error: a readable message and the error type."""

    detail: str
    error: str


class ModelInfo(BaseModel):
    """One served model: what it is, what it takes and whether it can stream."""

    model_config = ConfigDict(extra="allow")

    name: str
    model: str
    task: str
    state: str = Field(description="loading, ready or failed")
    classes: list[str] | None = None
    input: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    streaming: bool | None = None
    streaming_reason: str | None = None
    error: str | None = None


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str = Field(description="ok (every model loaded), loading, or failed")
    models: dict[str, str] = Field(description="each model's state: loading, ready or failed")


def parse_predict(body: bytes) -> PredictRequest:
    """The request in `body`; DataError (→ 400) if it is not UTF-8 JSON, ValidationError (→ 422) if it
    is JSON of the wrong shape."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"the request body is not valid UTF-8 (byte {e.start}); send UTF-8 JSON.") from None
    return PredictRequest.model_validate_json(body)


def describe_errors(error: ValidationError) -> tuple[bool, str]:
    """(is the body malformed JSON, one readable line) from a pydantic ValidationError."""
    errors = error.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        message = next(e for e in errors if e["type"] == "json_invalid")["msg"]
        return True, f"the request body is not valid JSON: {message.removeprefix('Invalid JSON: ')}."
    # a union reports every branch it tried ("should be a valid string / array"); those help only when
    # nothing else is wrong, and the deepest error of a field names the value at fault
    useful = [e for e in errors if e["type"] not in ("string_type", "list_type")] or errors
    deepest: dict[object, int] = {}
    for e in useful:
        deepest[e["loc"][:1]] = max(deepest.get(e["loc"][:1], 0), _depth(e["loc"]))
    lines = []
    for e in useful:
        if _depth(e["loc"]) < deepest[e["loc"][:1]]:
            continue
        where = _location(e["loc"])
        line = f"{where}: {e['msg']}" if where else e["msg"]
        if line not in lines:
            lines.append(line)
    more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
    return False, "invalid request: " + "; ".join(lines[:3]) + more + "."


def _depth(loc: tuple) -> int:
    return sum(1 for part in loc if isinstance(part, int) or not _is_branch(part))


def _is_branch(part: str) -> bool:
    return part in ("str", "float", "int", "bool") or "[" in part or part.startswith(("union", "function"))


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_branch(part):
            continue  # pydantic's name of a union branch, not a place in the body
        else:
            out += f".{part}" if out else part
    return out
