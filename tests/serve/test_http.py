"""The HTTP API against a real uvicorn server on a loopback port: every endpoint, every task kind, and the
401 / 413 / 415 / 422 / 400 / 404 / 503 cases."""

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import TOKEN, ThreadServer, wait_ready
from PIL import Image

from gridseq.predict import Predictor
from gridseq.serve import ServeSettings, create_app
from gridseq.serve.registry import ModelRegistry

WALK = [[0.5, -0.2], [1.0, 0.3], [1.4, 0.1]]


def post(client, name, body=None, **kw):
    return client.post(f"/models/{name}/predict", json=body, **kw) if body is not None else client.post(f"/models/{name}/predict", **kw)


def assert_error(r, status, *fragments):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"detail", "error"} and body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]
    return body


# ---- health, listing, docs ----------------------------------------------------------------------

def test_health_and_models_list_every_run(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and set(r.json()["models"].values()) == {"ready"}
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert set(models) == {"digits", "walks", "walks-mean", "walks-bi", "copy", "adding", "names", "story", "pairs", "series", "clips"}
    assert models["digits"]["task"] == "classify" and models["digits"]["classes"] == [str(i) for i in range(10)]
    assert models["digits"]["input"]["kind"] == "image" and models["digits"]["input"]["size"] == [8, 8]
    assert models["walks"]["input"]["features"] == 2 and models["walks"]["input"]["variable_length"] is True
    assert models["walks"]["input"]["limits"]["max_length"] == 512  # 4x the training length 12, at least 512
    assert models["walks"]["streaming"] is True
    assert models["walks-bi"]["streaming"] is False and "bidirectional" in models["walks-bi"]["streaming_reason"]
    assert models["clips"]["input"]["kind"] == "video" and models["clips"]["streaming"] is True
    assert models["story"]["task"] == "lm" and models["pairs"]["task"] == "seq2seq" and models["series"]["task"] == "forecast"
    assert client.get("/models/walks").json()["name"] == "walks"


def test_openapi_schema_is_generated_from_the_request_models(client):
    schema = client.get("/openapi.json").json()
    post_ = schema["paths"]["/models/{name}/predict"]["post"]
    assert post_["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/PredictRequest"
    components = schema["components"]["schemas"]
    assert {"PredictRequest", "PredictOptions", "NestedNumbers", "PredictResponse", "ModelInfo", "Health"} <= set(components)
    assert components["PredictRequest"]["required"] == ["inputs"]
    assert schema["security"] == [{"bearer": []}]
    assert client.get("/docs").status_code == 200


# ---- predictions for every task kind ------------------------------------------------------------

def test_predict_matches_the_library(client, runs):
    digits = np.arange(64).reshape(8, 8) % 17
    r = post(client, "digits", {"inputs": [digits.tolist()], "options": {"top_k": 3}})
    assert r.status_code == 200, r.text
    expected = Predictor.from_run(runs["cnn"]).predict([digits], top_k=3)
    assert r.json() == {"model": "digits", "task": "classify", **expected}
    assert len(r.json()["probabilities"][0]) == 3

    r = post(client, "walks", {"inputs": [WALK, [[0.0, 0.0]] * 5], "lengths": [3, 2]})
    assert r.status_code == 200, r.text
    expected = Predictor.from_run(runs["lstm"]).predict([WALK, [[0.0, 0.0]] * 2])
    got = r.json()
    assert got["predictions"] == expected["predictions"]
    for a, b in zip(got["probabilities"], expected["probabilities"]):
        assert all(abs(a[k] - b[k]) < 1e-5 for k in a)


def test_predict_base64_png(client):
    img = Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    r = post(client, "digits", {"inputs": [png, "data:image/png;base64," + png]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0] == r.json()["predictions"][1]


@pytest.mark.parametrize("name, body, check", [
    ("copy", {"inputs": [np.eye(10)[np.arange(23) % 10].tolist()], "options": {"top_k": 2}},
     lambda j: len(j["predictions"][0]) == 23 and len(j["probabilities"][0][0]) == 2),
    ("adding", {"inputs": [[[0.5, 1.0], [0.2, 0.0]] * 4]}, lambda j: set(j["predictions"][0]) == {"sum"}),
    ("names", {"inputs": ["aeiou", "bcdfg"]}, lambda j: set(j["predictions"]) <= {"vowels", "consonants"}),
    ("story", {"inputs": ["the ", ""], "options": {"length": 12, "seed": 3, "temperature": 0.5}},
     lambda j: [len(p) for p in j["predictions"]] == [12, 12]),
    ("pairs", {"inputs": ["abc", "fed"], "options": {"beam": 2}}, lambda j: all(isinstance(p, str) for p in j["predictions"])),
    ("series", {"inputs": [np.sin(np.arange(30) / 4).tolist()], "options": {"steps": 5}},
     lambda j: len(j["predictions"][0]) == 5 and j["targets"] == ["value"]),
    ("walks-mean", {"inputs": [WALK]}, lambda j: j["predictions"][0] in ("up", "down")),
    ("clips", {"inputs": [np.zeros((6, 8, 8)).tolist(), np.ones((4, 8, 8)).tolist()]},  # clips of different lengths
     lambda j: len(j["predictions"]) == 2 and set(j["predictions"]) <= {"right", "down"}),
])
def test_predict_every_task_kind(client, name, body, check):
    r = post(client, name, body)
    assert r.status_code == 200, r.text
    assert check(r.json()), r.json()


def test_a_video_clip_path_never_reads_the_servers_disk(client, tmp_path):
    """A client cannot make the server load a file: a string where a clip goes is a 422, even naming a real .npy."""
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((6, 8, 8), dtype=np.float32))
    r = post(client, "clips", {"inputs": [str(clip)]})
    assert r.status_code == 422 and "never paths to files" in r.text


def test_lm_generation_is_reproducible_with_a_seed(client):
    body = {"inputs": ["the "], "options": {"length": 20, "seed": 7}}
    assert post(client, "story", body).json() == post(client, "story", body).json()


def test_concurrent_requests_share_forward_passes(client, server):
    """Micro-batching: many concurrent requests, fewer forward passes, and the same answers as alone."""
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(rng.integers(1, 12)), 2)).round(3).tolist() for _ in range(48)]
    alone = [post(client, "walks", {"inputs": [s]}).json()["probabilities"][0] for s in seqs[:6]]
    before = client.get("/models/walks").json()["batching"]

    def one(s):
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as c:
            return post(c, "walks", {"inputs": [s]})

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, seqs))
    assert all(r.status_code == 200 for r in responses)
    after = client.get("/models/walks").json()["batching"]
    assert after["items"] - before["items"] == 48
    assert after["passes"] - before["passes"] < 48  # some requests shared a pass
    for r, expected in zip(responses, alone):
        got = r.json()["probabilities"][0]
        assert all(abs(got[k] - expected[k]) < 1e-5 for k in got)  # padding in a merged batch changes nothing


# ---- authentication -----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"}])
def test_401_without_the_right_token(server, headers):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for method, path in (("GET", "/health"), ("GET", "/models"), ("POST", "/models/walks/predict"), ("GET", "/openapi.json")):
            r = c.request(method, path, headers=headers, json={"inputs": [WALK]} if method == "POST" else None)
            assert_error(r, 401, "Authorization: Bearer")
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in r.text


# ---- bad requests -------------------------------------------------------------------------------

def test_413_for_a_body_over_the_limit(client):
    big = {"inputs": [[[0.0, 0.0]] * 40000]}  # ~400 KB > the 256 KiB limit
    assert_error(post(client, "walks", big), 413, "limit of 262144 bytes")

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"inputs": [['
        for _ in range(30000):
            yield b"[0.0, 0.0],"
        yield b"[0.0, 0.0]]]}"

    r = client.post("/models/walks/predict", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "limit")


@pytest.mark.parametrize("name, body, status, fragment", [
    ("digits", {"inputs": [np.zeros((7, 8)).tolist()]}, 422, "shape (1, 8, 8) or (8, 8)"),
    ("digits", {"inputs": ["not-an-image"]}, 422, "not base64 image data"),
    ("digits", {"inputs": [base64.b64encode(b"GIF89a-broken").decode()]}, 422, "not a readable"),
    ("digits", {"inputs": [[1, [2, 3]]]}, 422, "not a rectangular array"),
    ("walks", {"inputs": [[[1.0, 2.0, 3.0]]]}, 422, "F=2 features"),
    ("walks", {"inputs": [[[0.0, 0.0]] * 600]}, 422, "at most 512"),
    ("walks", {"inputs": [WALK], "lengths": [4]}, 422, "lengths[0] = 4"),
    ("walks", {"inputs": [WALK], "lengths": [0]}, 422, "lengths[0] = 0"),
    ("walks", {"inputs": [WALK, WALK], "lengths": [3]}, 422, "one length per input"),
    ("walks", {"inputs": [[]]}, 422, "no steps"),
    ("walks", {"inputs": [WALK] * 33}, 422, "at most 32"),
    ("walks", {"inputs": [WALK], "options": {"beam": 2}}, 422, "does not apply"),
    ("walks", {"inputs": [[[1e39, 0.0]] * 3]}, 422, "too large for float32"),
    ("walks", {"inputs": "abc"}, 422, "inputs: Input should be a valid array"),
    ("walks", {"inputs": []}, 422, "at least 1 item"),
    ("walks", {"inputs": [WALK], "extra": 1}, 422, "extra: Extra inputs are not permitted"),
    ("names", {"inputs": [[1.0]]}, 422, "expected a string"),
    ("names", {"inputs": [""]}, 422, "empty"),
    ("names", {"inputs": ["a" * 5000]}, 422, "at most"),
    ("names", {"inputs": ["abc"], "lengths": [1]}, 422, "lengths apply to sequence inputs"),
    ("story", {"inputs": ["the"], "options": {"length": 5000}}, 422, "limit of 1000"),
    ("pairs", {"inputs": ["abc"], "options": {"beam": 99}}, 422, "at most 16"),
    ("series", {"inputs": [[1.0, 2.0]]}, 422, "last 12 steps"),
])
def test_422_with_the_gridseq_message(client, name, body, status, fragment):
    assert_error(post(client, name, body), status, fragment)


@pytest.mark.parametrize("raw, fragment", [
    (b'{"inputs": [NaN]}', "finite number"),
    (b'{"inputs": [[Infinity, 1]]}', "finite number"),
    (b'{"inputs": [[1e999]]}', "finite number"),
    (b'{"inputs": [[true, 1.0]]}', "valid number"),
    (b'{"inputs": [["1.5"]]}', "valid number"),
])
def test_422_for_non_finite_and_non_numeric_values(client, raw, fragment):
    r = client.post("/models/walks/predict", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, fragment)


@pytest.mark.parametrize("raw, fragment", [
    (b'{"inputs": [[1, 2]', "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b'{"inputs": ["caf\xe9"]}', "not valid UTF-8"),
    (b'{"inputs": ["\\ud800"]}', "not valid JSON"),
    (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", "not valid JSON"),
])
def test_400_for_malformed_bodies(client, raw, fragment):
    r = client.post("/models/names/predict", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 400, fragment)


def test_415_404_405(client):
    r = client.post("/models/walks/predict", content=b'{"inputs": [[[1, 2]]]}', headers={"content-type": "text/plain"})
    assert_error(r, 415, "application/json")
    assert_error(post(client, "wlaks", {"inputs": [WALK]}), 404, "Did you mean 'walks'?")
    assert_error(client.get("/models/wlaks"), 404, "no model named")
    assert client.get("/models/walks/predict").status_code == 405
    assert_error(client.get("/nowhere"), 404)


def test_the_server_keeps_serving_after_errors(client):
    for raw in (b"\x00", b'{"inputs": [NaN]}', b"[" * 100):
        client.post("/models/walks/predict", content=raw, headers={"content-type": "application/json"})
    assert post(client, "walks", {"inputs": [WALK]}).status_code == 200


# ---- readiness and failures ---------------------------------------------------------------------

def test_health_is_503_while_loading_then_200(runs, monkeypatch):
    release = threading.Event()
    original = Predictor.from_run

    def slow(*args, **kw):
        release.wait(30)
        return original(*args, **kw)

    monkeypatch.setattr(Predictor, "from_run", staticmethod(slow))
    settings = ServeSettings(runs={"walks": str(runs["lstm"])})
    with ThreadServer(create_app(settings, ModelRegistry(settings))) as srv, httpx.Client(base_url=srv.url) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "loading", "models": {"walks": "loading"}}
        assert_error(post(c, "walks", {"inputs": [WALK]}), 503, "still loading")
        assert c.get("/models").json()["models"][0]["state"] == "loading"
        release.set()
        wait_ready(c)
        assert post(c, "walks", {"inputs": [WALK]}).status_code == 200


def test_a_run_that_fails_to_load_is_reported_and_others_serve(runs, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    settings = ServeSettings(runs={"walks": str(runs["lstm"]), "broken": str(broken)})
    with ThreadServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as c:
        deadline = time.monotonic() + 30
        while c.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "failed" and r.json()["models"]["walks"] == "ready"
        assert_error(post(c, "broken", {"inputs": [WALK]}), 503, "failed to load", "not valid JSON")
        assert post(c, "walks", {"inputs": [WALK]}).status_code == 200


def test_no_batching_gives_the_same_answers(runs):
    settings = ServeSettings(runs={"walks": str(runs["lstm"])}, batching=False)
    with ThreadServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as c:
        wait_ready(c)
        got = post(c, "walks", {"inputs": [WALK]}).json()
    assert got["predictions"] == Predictor.from_run(runs["lstm"]).predict([WALK])["predictions"]
