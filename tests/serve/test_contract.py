"""The OpenAPI document tells the truth: schemathesis, driven by the document alone, sends schema-valid
and schema-violating requests to served models of each kind with an exact schema (an image CNN, a text
GRU, a variable-length sequence LSTM, a video CRNN, a language model, a seq2seq model), with every check it has
(`--checks all`: no 5xx, every status documented, responses conform, valid data accepted, invalid data
rejected, the token enforced), and finds nothing. Plus the parts of the document a fuzzer does not read:
one operation per served model, the bearer scheme, and the statuses each operation lists."""

import re
import shutil
import subprocess

import httpx
import pytest
from conftest import TOKEN, ThreadServer, wait_ready

from gridseq.serve import ServeSettings, create_app

SCHEMATHESIS = shutil.which("schemathesis")
pytestmark = pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed: pip install 'gridseq[test]'")


@pytest.fixture(scope="module")
def exact_server(runs):
    """A server with a token holding models whose requests have an exact schema: an image CNN, a text GRU."""
    served = {"digits": "cnn", "names": "text", "walks": "lstm", "clips": "video", "story": "lm", "pairs": "seq2seq"}
    settings = ServeSettings(runs={name: str(runs[kind]) for name, kind in served.items()}, token=TOKEN,
                             max_body_bytes=256 * 1024, max_items=8, max_generate=100)
    with ThreadServer(create_app(settings)) as srv:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            wait_ready(client)  # the per-model operations are published once every model is loaded
            srv.schema = client.get("/openapi.json").json()
        yield srv


def test_each_model_has_its_own_operation_and_every_status_is_documented(exact_server):
    schema = exact_server.schema
    exact = [f"/models/{name}/predict" for name in ("digits", "names", "walks", "clips", "story", "pairs")]
    assert set(schema["paths"]) == {"/health", "/models", "/models/{name}", *exact}  # every kind has its own
    assert schema["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for path in exact:
        assert set(schema["paths"][path]["post"]["responses"]) == {"200", "400", "401", "413", "415", "422", "503"}
    assert {"401", "404"} <= set(schema["paths"]["/models/{name}"]["get"]["responses"])
    components = schema["components"]["schemas"]
    names = components["PredictRequest_names"]
    assert names["properties"]["inputs"]["items"]["minLength"] == 1  # "" is rejected by the server, so by the schema
    assert set(names["properties"]["options"]["properties"]) == {"top_k", "invert"}  # classify's options, not steps
    digits = components["PredictRequest_digits"]["properties"]["inputs"]["items"]["anyOf"]
    assert [d["minItems"] for d in digits] == [1, 8, 64, 8]  # (1, 8, 8), (8, 8, 1), 64 flat, (8, 8)
    # a sequence carries its own length: no `lengths` beside the inputs (its rule spans fields), said in words
    walks = components["PredictRequest_walks"]
    assert set(walks["properties"]) == {"inputs", "options"} and "lengths" in walks["description"]
    step = walks["properties"]["inputs"]["items"]["anyOf"][0]
    assert "maxItems" in step and step["items"]["minItems"] == step["items"]["maxItems"] == 2  # any length, 2 features
    clips = components["PredictRequest_clips"]["properties"]["inputs"]["items"]["anyOf"]
    assert clips[0]["items"]["minItems"] == 8 and clips[0]["items"]["items"]["items"]["maximum"] == 1  # (T, 8, 8) in [0, 1]
    story = components["PredictRequest_story"]["properties"]
    assert story["inputs"]["items"]["pattern"].startswith("^$|[")  # empty, or a character the vocabulary knows
    assert story["options"]["properties"]["length"]["anyOf"][0]["maximum"] == 100


def test_the_lengths_form_still_works_outside_the_schema(exact_server):
    with httpx.Client(base_url=exact_server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        seq = [[0.1, 0.2], [0.3, 0.1], [0.0, -0.4]]
        cut = client.post("/models/walks/predict", json={"inputs": [seq], "lengths": [2], "options": {"top_k": 2}})
        own = client.post("/models/walks/predict", json={"inputs": [seq[:2]], "options": {"top_k": 2}})
        assert cut.status_code == own.status_code == 200 and cut.json()["probabilities"] == own.json()["probabilities"]
        too_long = client.post("/models/walks/predict", json={"inputs": [seq], "lengths": [4]})
        assert too_long.status_code == 422 and "lengths[0]" in too_long.json()["detail"]


def test_schemathesis_finds_no_failure(exact_server):
    cmd = [SCHEMATHESIS, "run", f"{exact_server.url}/openapi.json", "--checks", "all", "-H", f"Authorization: Bearer {TOKEN}",
           "--max-examples", "25", "--generation-deterministic", "--no-color", "--request-timeout", "60",
           "--suppress-health-check", "too_slow"]  # nested video arrays are slow to generate, not wrong
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", out)
    assert done.returncode == 0 and "No issues found" in out, out[-4000:]
    assert generated and int(generated.group(1)) >= 200, out[-2000:]
    print(f"schemathesis --checks all: {generated.group(1)} generated cases, no issues found")  # shown with -s
