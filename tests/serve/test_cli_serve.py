"""`gridseq serve` as a real process: token auth, graceful shutdown on SIGTERM with a request in flight,
no token in the logs, and one-line errors (exit 2) for bad arguments."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
from conftest import free_port

from gridseq import cli

WALK = [[0.5, -0.2], [1.0, 0.3]]


def _one_line_error(capsys, argv, *fragments):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("gridseq: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_serve_argument_errors_are_one_line(capsys, tmp_path, runs):
    _one_line_error(capsys, ["serve", tmp_path / "missing"], "is not a directory")
    empty = tmp_path / "token.txt"
    empty.write_text("  \n", encoding="utf-8")
    _one_line_error(capsys, ["serve", runs["lstm"], "--token-file", empty], "is empty")
    _one_line_error(capsys, ["serve", runs["lstm"], "--token-file", tmp_path / "nope.txt"], "cannot read the token file")
    _one_line_error(capsys, ["serve", f"a={runs['lstm']}", f"a={runs['cnn']}"], "two runs are named 'a'")
    bare = tmp_path / "bare"
    import gridseq

    gridseq.save(gridseq.models.create("lstm", input_size=2, num_classes=2), bare)
    _one_line_error(capsys, ["serve", bare], "no data section")
    assert cli.main(["serve", "--help"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out


def test_served_process_auth_graceful_shutdown_and_quiet_logs(runs, tmp_path):
    token = "tok-" + "7f3a9c" * 6
    wrong = "wrong-" + "b1e2" * 6
    token_file = tmp_path / "token.txt"
    token_file.write_text(token + "\n", encoding="utf-8")
    port = free_port()
    log = open(tmp_path / "server.log", "w+", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "gridseq", "serve", f"walks={runs['lstm']}", "--port", str(port),
                             "--token-file", str(token_file), "-v"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    good = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", headers=good, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, open(tmp_path / "server.log").read()
            time.sleep(0.2)
        assert httpx.get(url + "/health", timeout=5).status_code == 401
        assert httpx.get(url + "/models", headers={"Authorization": f"Bearer {wrong}"}, timeout=5).status_code == 401

        result = {}

        def slow_body():  # the request stays in flight while its body trickles in
            yield b'{"inputs": ['
            time.sleep(1.5)
            yield json.dumps(WALK).encode() + b"]}"

        def in_flight():
            start = time.monotonic()
            result["response"] = httpx.post(url + "/models/walks/predict", content=slow_body(), timeout=30,
                                            headers={**good, "content-type": "application/json"})
            result["seconds"] = time.monotonic() - start

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.5)  # the request is now in flight
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
        assert result["response"].status_code == 200, result["response"].text
        assert result["response"].json()["predictions"][0] in ("up", "down")
        assert result["seconds"] > 1.0  # it really was in flight when the signal came
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    text = log.read()
    assert "/models/walks/predict" in text and "401" in text  # the access log is there...
    assert token not in text and wrong not in text  # ...without any token
    assert "Traceback" not in text
