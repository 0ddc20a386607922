"""Audio transcription over the WebSocket: chunks of samples in, the transcript of the audio so far out;
the reply to the last chunk equals the offline transcript (POST /predict, Predictor.predict) of the
whole recording."""

import asyncio
import json

import numpy as np
import pytest
import torch
import websockets
from conftest import TOKEN, ThreadServer, wait_ready

import gridseq
from gridseq import datasets, io, models
from gridseq.data import audio
from gridseq.data.builtin.transcribe import dtmf_utterance
from gridseq.errors import ConfigError, DataError
from gridseq.predict import Predictor
from gridseq.serve import ServeSettings, create_app
from gridseq.serve.stream import StreamSession, streamable

RATE = 8000


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory):
    """A crnn-ctc run on 16 DTMF recordings (a WAV folder + transcripts.csv): one epoch gives the run directory
    (front end, alphabet); then the output layer is scaled up and the blank ruled out, so the frames' labels
    change with the audio (a briefly trained CTC model emits only blanks, which would make "the transcript
    changes" vacuous)."""
    root = tmp_path_factory.mktemp("dtmf")
    rng = np.random.default_rng(0)
    rows = ["file,transcript"]
    for i in range(16):
        keys = "".join(rng.choice(list("0123"), size=rng.integers(2, 5)))
        audio.write_wav(root / f"{i}.wav", dtmf_utterance(keys, rng, 20.0), RATE)
        rows.append(f"{i}.wav,{keys}")
    (root / "transcripts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = datasets.load(str(root), sample_rate=RATE)
    torch.manual_seed(0)  # the initial weights (fit's seed comes after the model is built)
    model = models.create_for("crnn-ctc", data.info, channels=(8, 16), pools=((2, 2), (2, 2)), hidden_size=32, num_layers=1,
                              dropout=0.0)
    run_dir = tmp_path_factory.mktemp("runs") / "dtmf-ctc"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same weights on every run (float sums in one order)
    try:
        gridseq.fit(model, data, epochs=1, batch_size=8, run_dir=run_dir, progress=False, seed=0)
    finally:
        torch.set_num_threads(threads)
    trained = io.load(run_dir)
    with torch.no_grad():
        trained.head.weight.mul_(40.0)
        trained.head.bias.zero_()
        trained.head.bias[0] = -1e3  # never the blank: every frame emits a label
    gridseq.save(trained, run_dir, extra=io.read_config(run_dir))
    return run_dir


def _recording(keys="0312", seed=7):
    return dtmf_utterance(keys, np.random.default_rng(seed), 20.0)


def test_audio_stream_ends_on_the_offline_transcript(ctc_run):
    p = Predictor.from_run(ctc_run)
    assert streamable(p) == (True, "")
    wave = _recording()
    session = StreamSession(p)
    replies = [session.step(chunk.tolist()) for chunk in np.array_split(wave, 9)]  # 9 uneven chunks
    assert [r["step"] for r in replies] == list(range(1, 10)) and replies[-1]["samples"] == wave.size
    assert replies[-1]["seconds"] == pytest.approx(wave.size / RATE, abs=1e-4)
    offline = p.predict([wave])["predictions"][0]
    assert replies[-1]["prediction"] == offline
    for r in replies:  # every partial is the offline transcript of its prefix
        assert r["prediction"] == p.predict([wave[: r["samples"]]])["predictions"][0]
    assert len({r["prediction"] for r in replies}) > 1  # the transcript changes as audio arrives
    session.reset()
    assert session.step(wave.tolist())["prediction"] == offline  # one chunk: the same


def test_audio_stream_rejects_bad_chunks_and_keeps_its_audio(ctc_run):
    p = Predictor.from_run(ctc_run)
    session = StreamSession(p)
    first = session.step(_recording()[:800].tolist())
    for bad in ([], [[0.1, 0.2]], "hello", [float("nan")]):
        with pytest.raises(DataError):
            session.step(bad)
    assert session.steps == 1 and session.step([0.0])["samples"] == first["samples"] + 1


def test_handwriting_transcription_does_not_stream(ctc_run, tmp_path):
    from gridseq.data.contract import DatasetInfo

    p = Predictor.from_run(ctc_run)
    info = DatasetInfo(**{**vars(p.info), "preprocessing": {**p.info.preprocessing, "layout": "image"}})
    ok, reason = streamable(Predictor(p.model, info))
    assert not ok and "POST /predict with whole lines" in reason
    with pytest.raises(ConfigError, match="whole lines"):
        StreamSession(Predictor(p.model, info))


def test_audio_stream_over_the_websocket_equals_post_predict(ctc_run):
    import httpx

    app = create_app(ServeSettings(runs={"ctc": str(ctc_run)}, token=TOKEN))
    wave = _recording("2013", seed=3)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with ThreadServer(app) as server:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            wait_ready(client)
            offline = client.post("/models/ctc/predict", json={"inputs": [wave.tolist()]}).json()

        async def run():
            async with websockets.connect(server.url.replace("http://", "ws://") + "/models/ctc/stream", additional_headers=headers) as ws:
                replies = []
                for chunk in np.array_split(wave, 5):
                    await ws.send(json.dumps({"input": chunk.tolist()}))
                    replies.append(json.loads(await ws.recv()))
                await ws.send(json.dumps({"reset": True}))
                reset = json.loads(await ws.recv())
                return replies, reset

        replies, reset = asyncio.run(run())
    assert [r["step"] for r in replies] == [1, 2, 3, 4, 5] and reset == {"step": 0, "reset": True}
    assert replies[-1]["prediction"] == offline["predictions"][0]
