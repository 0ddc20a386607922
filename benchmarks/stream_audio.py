"""Latency of a crnn-ctc audio stream over `gridseq.serve.stream.StreamSession` (the WebSocket's session):
a default-size crnn-ctc (one epoch on 16 DTMF recordings: the timing, not the transcript, is measured),
a 3.24 s recording sent in 32 chunks of ~0.1 s; each chunk re-transcribes all the audio so far.

    python benchmarks/stream_audio.py
"""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import gridseq
from gridseq import datasets, models
from gridseq.data import audio
from gridseq.data.builtin.transcribe import dtmf_utterance
from gridseq.predict import Predictor
from gridseq.serve.stream import StreamSession

torch.set_num_threads(1)
tmp = Path(tempfile.mkdtemp())
root = tmp / "wavs"
root.mkdir()
rng = np.random.default_rng(0); rows = ["file,transcript"]
for i in range(16):
    k = "".join(rng.choice(list("0123456789"), size=4)); audio.write_wav(root / f"{i}.wav", dtmf_utterance(k, rng, 20.0), 8000); rows.append(f"{i}.wav,{k}")
(root / "transcripts.csv").write_text("\n".join(rows) + "\n")
data = datasets.load(str(root), sample_rate=8000)
run = tmp / "run"
gridseq.fit(models.create_for("crnn-ctc", data.info), data, epochs=1, batch_size=8, run_dir=run, progress=False, seed=0)
p = Predictor.from_run(run)
wave = np.tile(dtmf_utterance("0123456789", np.random.default_rng(1), 20.0), 2)  # 3.24 s
s = StreamSession(p)
for i, chunk in enumerate(np.array_split(wave, 32)):
    t = time.perf_counter(); r = s.step(chunk.tolist()); dt = time.perf_counter() - t
    if (i + 1) in (1, 4, 8, 16, 32): print(f"after {r['seconds']:.2f} s of audio: {dt * 1000:.0f} ms for the chunk")
t = time.perf_counter(); p.predict([wave]); print(f"offline, the whole recording: {(time.perf_counter() - t) * 1000:.0f} ms")
