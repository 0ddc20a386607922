"""Tiny trained runs (one per task kind) and a real server on a loopback port, shared by the serve tests.

Every run trains for an epoch or two on a few hundred items with `gridseq.fit`, so the whole set takes a
few seconds; accuracy does not matter here, only that the run directories are real.
"""

import csv
import socket
import threading
import time

import numpy as np
import pytest

import gridseq
from gridseq import datasets, models

try:  # the `serve` extra and httpx (both in the `test` extra); without them this folder is not collected
    import fastapi  # noqa: F401
    import httpx  # noqa: F401
    import uvicorn  # noqa: F401
    import websockets  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]


def _small(data, n=256):
    """The dataset with each split cut to its first n items (the runs only need to exist, not to be good)."""
    from gridseq.data.contract import Dataset, Split

    def cut(split):
        lengths = None if split.lengths is None else split.lengths[:n]
        texts = split.texts[:n] if isinstance(split.texts, list) else split.texts
        targets = split.targets[:n] if split.targets is not None else None
        return Split(split.x[:n], split.y[:n], lengths, texts, targets)

    return Dataset(data.info, cut(data.train), cut(data.val), cut(data.test))


def _fit(data, name, run_dir, epochs=1, **model_kw):
    data = _small(data)
    model = models.create_for(name, data.info, **model_kw)
    gridseq.fit(model, data, epochs=epochs, batch_size=32, run_dir=run_dir, progress=False, seed=0)
    return run_dir


def write_walks(path, n=240, seed=0):
    """Variable-length 2-feature random walks; class "up" when feature 0 ends above its start."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 13, size=n)
    x = np.zeros((n, 12, 2), dtype=np.float32)
    y = []
    for i, t in enumerate(lengths):
        steps = rng.normal(size=(t, 2)).astype(np.float32)
        x[i, :t] = np.cumsum(steps, axis=0)
        y.append("up" if x[i, t - 1, 0] > 0 else "down")
    np.savez(path, x=x, y=np.array(y), lengths=lengths)
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """{kind: run directory} for every task kind the server handles."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    digits = datasets.load("digits")
    out["cnn"] = _fit(digits, "cnn", root / "digits-cnn", channels=(8,), hidden=16)

    walks = datasets.load(str(write_walks(root / "walks.npz")))
    out["lstm"] = _fit(walks, "lstm", root / "walks-lstm", epochs=2, hidden_size=16)
    out["gru_mean"] = _fit(walks, "gru", root / "walks-gru-mean", hidden_size=8, pooling="mean")
    out["bilstm"] = _fit(walks, "lstm", root / "walks-bilstm", hidden_size=8, bidirectional=True)

    copy = datasets.load("copy", length=3)
    out["tagger"] = _fit(copy, "gru", root / "copy-gru", hidden_size=16)
    adding = datasets.load("adding", length=8)
    out["regress"] = _fit(adding, "rnn", root / "adding-rnn", hidden_size=8)

    names = root / "names.csv"
    rng = np.random.default_rng(0)
    with open(names, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(200):
            if i % 2:
                w.writerow(["".join(rng.choice(list("aeiou"), size=rng.integers(3, 9))), "vowels"])
            else:
                w.writerow(["".join(rng.choice(list("bcdfgk"), size=rng.integers(3, 9))), "consonants"])
    out["text"] = _fit(datasets.load(str(names), level="char"), "gru", root / "names-gru", hidden_size=16)

    text = root / "story.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    out["lm"] = _fit(datasets.load(str(text), chunk=32), "lstm", root / "story-lstm", hidden_size=16)

    pairs = root / "pairs.tsv"
    words = ["".join(rng.choice(list("abcdef"), size=rng.integers(2, 6))) for _ in range(200)]
    pairs.write_text("".join(f"{w}\t{w[::-1]}\n" for w in dict.fromkeys(words)), encoding="utf-8")
    out["seq2seq"] = _fit(datasets.load(str(pairs)), "seq2seq", root / "pairs-seq2seq", hidden_size=16)

    series = root / "series.csv"
    t = np.arange(120)
    with open(series, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["step", "value"])
        for i in t:
            w.writerow([int(i), float(np.sin(i / 4) + 0.01 * i)])
    out["forecast"] = _fit(datasets.load(str(series), task="forecast", time_column="step", window=12, horizon=3, season=4),
                           "gru", root / "series-gru", hidden_size=8)
    clips = write_clips(root / "clips")
    out["video"] = _fit(datasets.load(str(clips)), "crnn", root / "clips-crnn", channels=(4,), hidden_size=8, feature_dim=16)
    return out


def write_clips(root, n=40, seed=0):
    """Class folders of 6-frame 8x8 .npy clips: a bright dot moving right or down."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = ("right", "down")[i % 2]
        clip = rng.random((6, 8, 8)).astype(np.float32) * 0.2
        r, c = rng.integers(0, 3, size=2)
        for t in range(6):
            clip[t, r + (t if label == "down" else 0) % 8, c + (t if label == "right" else 0) % 8] = 1.0
        (root / label).mkdir(parents=True, exist_ok=True)
        np.save(root / label / f"{i}.npy", clip)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn serving `app` on a loopback port in a background thread."""

    def __init__(self, app, **config):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


def wait_ready(client, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/health")
        if r.status_code == 200:
            return r
        time.sleep(0.02)
    raise AssertionError(f"the server never became ready: {r.status_code} {r.text}")


TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture(scope="session")
def server(runs):
    """One server for the session holding every kind of run, with a token and small limits."""
    import httpx

    from gridseq.serve import ServeSettings, create_app

    names = {"digits": runs["cnn"], "walks": runs["lstm"], "walks-mean": runs["gru_mean"], "walks-bi": runs["bilstm"],
             "copy": runs["tagger"], "adding": runs["regress"], "names": runs["text"], "story": runs["lm"],
             "pairs": runs["seq2seq"], "series": runs["forecast"], "clips": runs["video"]}
    settings = ServeSettings(runs={k: str(v) for k, v in names.items()}, token=TOKEN, max_body_bytes=256 * 1024,
                             max_items=32, max_sessions=4, session_steps=50, idle_timeout=5.0)
    with ThreadServer(create_app(settings), ws_max_size=settings.max_body_bytes) as srv:
        srv.headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as client:
            wait_ready(client)
        yield srv


@pytest.fixture
def client(server):
    import httpx

    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as c:
        yield c
