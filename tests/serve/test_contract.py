"""The OpenAPI document tells the truth: schemathesis, driven by the document alone, sends schema-valid
and schema-violating requests to a served image model and a served text model, with every check it has
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
    settings = ServeSettings(runs={"digits": str(runs["cnn"]), "names": str(runs["text"])}, token=TOKEN,
                             max_body_bytes=256 * 1024, max_items=32)
    with ThreadServer(create_app(settings)) as srv:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            wait_ready(client)  # the per-model operations are published once every model is loaded
            srv.schema = client.get("/openapi.json").json()
        yield srv


def test_each_model_has_its_own_operation_and_every_status_is_documented(exact_server):
    schema = exact_server.schema
    assert set(schema["paths"]) == {"/health", "/models", "/models/{name}", "/models/digits/predict", "/models/names/predict"}
    assert schema["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for path in ("/models/digits/predict", "/models/names/predict"):
        assert set(schema["paths"][path]["post"]["responses"]) == {"200", "400", "401", "413", "415", "422", "503"}
    assert {"401", "404"} <= set(schema["paths"]["/models/{name}"]["get"]["responses"])
    components = schema["components"]["schemas"]
    names = components["PredictRequest_names"]
    assert names["properties"]["inputs"]["items"]["minLength"] == 1  # "" is rejected by the server, so by the schema
    assert set(names["properties"]["options"]["properties"]) == {"top_k", "invert"}  # classify's options, not steps
    digits = components["PredictRequest_digits"]["properties"]["inputs"]["items"]["anyOf"]
    assert [d["minItems"] for d in digits] == [1, 8, 64, 8]  # (1, 8, 8), (8, 8, 1), 64 flat, (8, 8)


def test_schemathesis_finds_no_failure(exact_server):
    cmd = [SCHEMATHESIS, "run", f"{exact_server.url}/openapi.json", "--checks", "all", "-H", f"Authorization: Bearer {TOKEN}",
           "--max-examples", "25", "--generation-deterministic", "--no-color"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", out)
    assert done.returncode == 0 and "No issues found" in out, out[-4000:]
    assert generated and int(generated.group(1)) >= 200, out[-2000:]
