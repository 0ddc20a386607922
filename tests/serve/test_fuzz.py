"""Fuzz /predict with malformed payloads: wrong types, wrong shapes, huge lengths, NaN, empty arrays, deep
nesting, random bytes. Every answer must be a 4xx with a message (or a 200 for a payload that happens to
be valid) — never a 500 — and the server must keep serving."""

import json

import httpx
import numpy as np
import pytest
from conftest import ThreadServer, wait_ready
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridseq.serve import ServeSettings, create_app

MODELS = ("digits", "walks", "names", "story", "series", "copy", "adding", "pairs")
OK = {200, 400, 413, 415, 422}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e40, 1e40),
                    st.integers(-(2**70), 2**70), st.sampled_from([0.0, -0.0, 1e308, 3.5e38, 1e-320]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=40)


@st.composite
def arrays(draw, finite=False, max_side=9):
    """Numeric arrays of random rank and shape (empty ones included); unless `finite`, with NaN, Inf and
    numbers beyond float64 mixed in (json.dumps writes them as NaN / Infinity / huge integers)."""
    shape = draw(st.lists(st.integers(0, max_side), min_size=0, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1e3, 1e30, 3.4e38]))
    a = np.asarray(rng.normal(size=shape) * scale).astype(object)
    if a.size and draw(st.booleans()):
        specials = [1e39, -0.0, 0] if finite else [float("nan"), float("inf"), -float("inf"), 2**70, 1e308]
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(specials))
    return a.tolist()


# well-formed JSON of the right types but the wrong shapes, lengths, sizes and options: these pass the
# schema and reach the model's own checks
typed_requests = st.fixed_dictionaries(
    {"inputs": st.lists(st.one_of(arrays(finite=True, max_side=12), st.text(max_size=40),
                                  st.binary(max_size=60).map(lambda b: __import__("base64").b64encode(b).decode())),
                        min_size=1, max_size=9)},
    optional={"lengths": st.lists(st.integers(-5, 2**62), min_size=0, max_size=9),
              "options": st.fixed_dictionaries({}, optional={"top_k": st.integers(1, 50), "beam": st.integers(1, 4),
                                                             "length": st.integers(1, 30), "temperature": st.floats(0, 200),
                                                             "seed": st.integers(-(2**40), 2**40), "steps": st.integers(1, 30),
                                                             "invert": st.booleans()})})


options = st.dictionaries(st.sampled_from(["top_k", "beam", "length", "temperature", "seed", "steps", "invert", "bogus"]),
                          st.one_of(st.integers(-3, 40), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3), st.none()),
                          max_size=3)
requests = st.fixed_dictionaries({"inputs": st.one_of(st.lists(st.one_of(arrays(), st.text(max_size=30), json_values), max_size=10),
                                                       json_values)},
                                 optional={"lengths": st.one_of(st.lists(st.integers(-(2**64), 2**64), max_size=10), json_values),
                                           "options": st.one_of(options, json_values)})


def _body(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN / Infinity literals on purpose


@pytest.fixture(scope="module")
def fuzz_server(runs):
    names = {"digits": runs["cnn"], "walks": runs["lstm"], "names": runs["text"], "story": runs["lm"], "series": runs["forecast"],
             "copy": runs["tagger"], "adding": runs["regress"], "pairs": runs["seq2seq"]}
    config = ServeSettings(runs={k: str(v) for k, v in names.items()}, max_body_bytes=64 * 1024, max_items=8, max_generate=20)
    with ThreadServer(create_app(config)) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        wait_ready(client)
        yield client


def _check(client, name, content: bytes):
    r = client.post(f"/models/{name}/predict", content=content, headers={"content-type": "application/json"})
    assert r.status_code in OK, (r.status_code, r.text, content[:200])
    if r.status_code != 200:
        body = r.json()
        assert isinstance(body.get("detail"), str) and body["detail"] and body["error"]
    return r


@FUZZ
@given(name=st.sampled_from(MODELS), request=requests)
def test_fuzz_structured_requests(fuzz_server, name, request):
    _check(fuzz_server, name, _body(request))


@FUZZ
@given(name=st.sampled_from(MODELS), request=typed_requests)
def test_fuzz_well_typed_requests(fuzz_server, name, request):
    _check(fuzz_server, name, _body(request))


@FUZZ
@given(name=st.sampled_from(MODELS), value=json_values)
def test_fuzz_arbitrary_json(fuzz_server, name, value):
    _check(fuzz_server, name, _body(value))


@FUZZ
@given(name=st.sampled_from(MODELS), raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_fuzz_raw_bytes(fuzz_server, name, raw):
    _check(fuzz_server, name, raw)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(name=st.sampled_from(MODELS), depth=st.integers(1, 20000), key=st.sampled_from(["inputs", "lengths", "options"]))
def test_fuzz_deep_nesting(fuzz_server, name, depth, key):
    content = b'{"' + key.encode() + b'": ' + b"[" * depth + b"]" * depth + b"}"
    r = fuzz_server.post(f"/models/{name}/predict", content=content, headers={"content-type": "application/json"})
    assert r.status_code in OK - {200} or (r.status_code == 200 and depth < 6), r.text


def test_still_serving_after_the_fuzz(fuzz_server):
    assert fuzz_server.get("/health").status_code == 200
    r = fuzz_server.post("/models/walks/predict", json={"inputs": [[[0.1, 0.2], [0.3, 0.4]]]})
    assert r.status_code == 200 and r.json()["predictions"][0] in ("up", "down")
