"""Streaming: a StreamSession's step-by-step outputs equal the full-sequence forward pass, in-process and
over the WebSocket, and the session limits (steps, idle time, concurrent streams) hold."""

import asyncio
import json
import math
import re

import numpy as np
import pytest
import torch
import websockets
from conftest import TOKEN, ThreadServer, wait_ready

from gridseq import models
from gridseq.data.vocab import SPECIALS
from gridseq.errors import ConfigError, DataError
from gridseq.predict import Predictor
from gridseq.serve import ServeSettings, create_app
from gridseq.serve.stream import StreamSession, streamable


def _walk(t=9, seed=0):
    return np.random.default_rng(seed).normal(size=(t, 2)).round(4).astype(np.float32)


def _full(predictor, x):
    """The model's output (logits) on the whole prepared sequence x, (T, F) raw or a string."""
    batch = predictor.prepare([x])
    with torch.no_grad():
        return predictor.task.forward(predictor.model, batch)


@pytest.mark.parametrize("kind", ["lstm", "gru_mean"])
def test_classifier_stream_equals_the_forward_pass_on_every_prefix(runs, kind):
    p = Predictor.from_run(runs[kind])
    x = _walk()
    session = StreamSession(p)
    for t in range(1, len(x) + 1):
        out = session.step(x[t - 1].tolist())
        probs = _full(p, x[:t]).softmax(-1)[0]
        streamed = torch.tensor([out["probabilities"][c] for c in p.info.class_names])
        assert out["step"] == t
        assert torch.allclose(streamed, probs, atol=1e-5), (t, streamed, probs)
        assert out["prediction"] == p.info.class_names[int(probs.argmax())]


def test_tagger_stream_equals_per_step_outputs(runs):
    p = Predictor.from_run(runs["tagger"])
    x = np.eye(10, dtype=np.float32)[np.arange(23) % 10]
    full = _full(p, x).softmax(-1)[0]  # (T, K)
    session = StreamSession(p)
    for t in range(23):
        out = session.step(x[t].tolist())
        streamed = torch.tensor([out["probabilities"][c] for c in p.info.class_names])
        assert torch.allclose(streamed, full[t], atol=1e-5)


def test_regress_and_text_streams(runs):
    p = Predictor.from_run(runs["regress"])
    x = np.random.default_rng(2).random((8, 2)).astype(np.float32)
    session = StreamSession(p)
    outs = [session.step(step.tolist()) for step in x]
    assert abs(outs[-1]["prediction"]["sum"] - float(_full(p, x)[0, 0])) < 1e-5

    p = Predictor.from_run(runs["text"])
    session = StreamSession(p)
    for ch in "aeib":
        out = session.step(ch)
    probs = _full(p, "aeib").softmax(-1)[0]
    assert abs(out["probabilities"]["vowels"] - float(probs[p.info.class_names.index("vowels")])) < 1e-5


def test_lm_stream_predicts_the_next_token_without_specials(runs):
    p = Predictor.from_run(runs["lm"])
    session = StreamSession(p)
    text = "the quick"
    for ch in text:
        out = session.step(ch)
    logits = _full(p, text)[0, -1].clone()
    logits[: len(SPECIALS)] = -math.inf
    assert out["prediction"] == p.vocab.tokens[int(logits.argmax())]
    assert len(out["probabilities"]) == 5 and not set(out["probabilities"]) & set(SPECIALS)


def _clip(seed=0):
    return np.random.default_rng(seed).random((6, 8, 8)).astype(np.float32)


def test_video_stream_equals_the_forward_pass_on_every_prefix(runs):
    # one message = one raw frame; the model's own stream() keeps the frame features' recurrent state
    p = Predictor.from_run(runs["video"])
    clip = _clip()
    session = StreamSession(p)
    for t in range(1, len(clip) + 1):
        out = session.step(clip[t - 1].tolist())
        probs = _full(p, clip[:t]).softmax(-1)[0]
        streamed = torch.tensor([out["probabilities"][c] for c in p.info.class_names])
        assert out["step"] == t and torch.allclose(streamed, probs, atol=1e-5), (t, streamed, probs)


def test_video_stream_refuses_bad_frames_and_bidirectional_models(runs):
    p = Predictor.from_run(runs["video"])
    session = StreamSession(p)
    first = session.step(_clip()[0].tolist())
    for bad, fragment in (([1.0, 2.0], "(H, W) or (H, W, C)"), (np.zeros((5, 5)).tolist(), "resize the frames to 8x8"),
                          ([[float("nan")] * 8] * 8, "NaN")):
        with pytest.raises(DataError, match=re.escape(fragment)):
            session.step(bad)
    session.reset()
    assert session.step(_clip()[0].tolist()) == first  # the failed frames left nothing behind
    bi = models.create_for("crnn", p.info, channels=(4,), hidden_size=8, bidirectional=True).eval()
    ok, reason = streamable(Predictor(bi, p.info))
    assert not ok and "bidirectional" in reason


def test_what_cannot_stream_says_why(runs):
    for kind, fragment in (("bilstm", "bidirectional"), ("cnn", "not a recurrent model"), ("seq2seq", "not a recurrent model"),
                           ("forecast", "streaming serves")):
        ok, reason = streamable(Predictor.from_run(runs[kind]))
        assert not ok and fragment in reason
        with pytest.raises(ConfigError, match=fragment):
            StreamSession(Predictor.from_run(runs[kind]))


def test_bad_steps_leave_the_session_unchanged(runs):
    session = StreamSession(Predictor.from_run(runs["lstm"]), max_steps=3)
    session.step([0.1, 0.2])
    for bad, fragment in (([1.0], "2 number"), ([float("nan"), 0.0], "NaN"), ("x", "string"), ([[1, 2]], "shape")):
        with pytest.raises(DataError, match=fragment):
            session.step(bad)
    assert session.steps == 1
    session.step([0.0, 0.0])
    session.step([0.0, 0.0])
    with pytest.raises(DataError, match="limit of 3 steps"):
        session.step([0.0, 0.0])
    session.reset()
    assert session.step([0.0, 0.0])["step"] == 1


# ---- over the WebSocket -------------------------------------------------------------------------

def _ws(server, name, **kw):
    url = server.url.replace("http://", "ws://") + f"/models/{name}/stream"
    return websockets.connect(url, additional_headers=server.headers, **kw)


def test_websocket_stream_equals_the_forward_pass(server, runs):
    p = Predictor.from_run(runs["lstm"])
    x = _walk(12, seed=3)

    async def talk():
        outs = []
        async with _ws(server, "walks") as ws:
            for step in x:
                await ws.send(json.dumps({"input": step.tolist()}))
                outs.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"reset": True}))
            assert json.loads(await ws.recv()) == {"step": 0, "reset": True}
            await ws.send(json.dumps({"input": x[0].tolist()}))
            outs.append(json.loads(await ws.recv()))
        return outs

    outs = asyncio.run(talk())
    for t, out in enumerate(outs[:-1], 1):
        probs = _full(p, x[:t]).softmax(-1)[0]
        assert out["step"] == t
        assert max(abs(out["probabilities"][c] - float(probs[i])) for i, c in enumerate(p.info.class_names)) < 1e-5
    assert outs[-1]["step"] == 1 and outs[-1]["probabilities"] == outs[0]["probabilities"]


def test_websocket_video_stream_equals_the_forward_pass(server, runs):
    p = Predictor.from_run(runs["video"])
    clip = _clip(seed=4)

    async def talk():
        async with _ws(server, "clips") as ws:
            outs = []
            for frame in clip:
                await ws.send(json.dumps({"input": frame.tolist()}))
                outs.append(json.loads(await ws.recv()))
            return outs

    for t, out in enumerate(asyncio.run(talk()), 1):
        probs = _full(p, clip[:t]).softmax(-1)[0]
        assert out["step"] == t
        assert max(abs(out["probabilities"][c] - float(probs[i])) for i, c in enumerate(p.info.class_names)) < 1e-5


def test_websocket_errors_keep_the_stream_open(server):
    async def talk():
        replies = []
        async with _ws(server, "walks") as ws:
            for message in ("{bad json", json.dumps([1, 2]), json.dumps({"input": [1.0]}), '{"input": [NaN, 1]}',
                            json.dumps({"input": [0.5, 0.5], "extra": 1})):
                await ws.send(message)
                replies.append(json.loads(await ws.recv()))
            await ws.send(b"\x00\x01")
            replies.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"input": [0.5, 0.5]}))
            replies.append(json.loads(await ws.recv()))
        return replies

    replies = asyncio.run(talk())
    assert all("error" in r for r in replies[:-1]), replies
    assert "not valid JSON" in replies[0]["error"] and "2 number" in replies[2]["error"] and "NaN" in replies[3]["error"]
    assert replies[-1]["step"] == 1


def _closed(server, name, **kw):
    async def talk():
        async with _ws(server, name, **kw) as ws:
            first = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            return first, info.value.rcvd
    return asyncio.run(talk())


def test_websocket_closes_with_a_reason(server):
    first, close = _closed(server, "walks-bi")
    assert close.code == 1003 and "bidirectional" in first["error"]
    first, close = _closed(server, "digits")
    assert close.code == 1003 and "not a recurrent model" in first["error"]
    first, close = _closed(server, "nope")
    assert close.code == 1008 and "no model named" in first["error"]


def test_websocket_needs_the_token(server):
    async def talk():
        url = server.url.replace("http://", "ws://") + "/models/walks/stream"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(url, additional_headers={"Authorization": "Bearer nope"}):
                pass
        return info.value.response

    response = asyncio.run(talk())
    assert response.status_code == 401 and TOKEN.encode() not in response.body


def test_session_step_limit_and_concurrent_session_limit(server):
    async def talk():
        async with _ws(server, "walks") as ws:  # session_steps=50 on the shared server
            for _ in range(50):
                await ws.send(json.dumps({"input": [0.1, 0.1]}))
                await ws.recv()
            await ws.send(json.dumps({"input": [0.1, 0.1]}))
            assert "limit of 50 steps" in json.loads(await ws.recv())["error"]
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1008
        held = [await _ws(server, "walks") for _ in range(4)]  # max_sessions=4
        try:
            async with _ws(server, "walks") as extra:
                assert "limit of 4 streams" in json.loads(await extra.recv())["error"]
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await extra.recv()
                assert info.value.rcvd.code == 1013
        finally:
            for ws in held:
                await ws.close()

    asyncio.run(talk())


def test_idle_stream_is_closed(runs):
    settings = ServeSettings(runs={"walks": str(runs["lstm"])}, idle_timeout=0.3)

    async def talk(url):
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"input": [0.1, 0.1]}))
            await ws.recv()
            assert "no message for 0.3 s" in json.loads(await ws.recv())["error"]
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code

    import httpx

    with ThreadServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as c:
        wait_ready(c)
        assert asyncio.run(talk(srv.url.replace("http://", "ws://") + "/models/walks/stream")) == 1001
