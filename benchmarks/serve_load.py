"""Load test of `gridseq serve`: 64 concurrent clients, a CNN and an LSTM, micro-batching on vs off.

    python -m benchmarks.serve_load                       # 5,000 requests per mode (the default)
    python -m benchmarks.serve_load --requests 500        # a quick look

Trains (or takes, with --cnn / --lstm) two run directories — the default CNN on `digits` (8x8 images) and
the default LSTM (hidden 128) on `mnist1d` (40 steps) — then for each mode starts
`gridseq serve` on a loopback port in its own process and warms it up. Then `--concurrency` clients
(asyncio, one keep-alive HTTP/1.1 connection each) send `--requests` single-item POST /predict requests
per mode, alternating the two models, each with a random digit image (raw units) or 40-step series.
The requests are split into `--rounds` rounds that alternate between the modes (the order rotating),
so a burst of load from elsewhere hits both alike. Loopback only, bounded in count (`--requests`) and
time (`--timeout` per round).

Reported per mode: throughput (requests/s), latency p50/p90/p99 (ms, client-side, includes queueing),
errors (any non-200 or transport failure), and the server's own count of forward passes and items
(their ratio is the mean micro-batch size). The client runs on the same machine and takes CPU from
the server: compare the two modes side by side, not with other machines.
Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "serve_load.json"
MODES = {"batching on": [], "batching off": ["--no-batching"]}


def train_runs(work: Path) -> dict[str, str]:
    """A digits CNN and an MNIST-1D LSTM (3 epochs each, default configs), trained once into `work`."""
    import gridseq
    from gridseq import datasets, models

    out = {}
    for name, dataset in (("cnn", "digits"), ("lstm", "mnist1d")):
        run_dir = work / f"{dataset}-{name}"
        if not (run_dir / "metrics.json").exists():
            data = datasets.load(dataset)
            model = models.create_for(name, data.info)
            result = gridseq.fit(model, data, epochs=3, run_dir=run_dir, progress=False, seed=0)
            print(f"trained {name}: test accuracy {result.test['accuracy']:.3f}", flush=True)
        out[name] = str(run_dir)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: dict[str, str], flags: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gridseq", "serve", *(f"{k}={v}" for k, v in runs.items()), "--port", str(port),
           "--no-access-log", *flags]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


async def wait_ready(client, proc, timeout=120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready")


class Connection:
    """A minimal HTTP/1.1 keep-alive client for one connection: the load generator must cost far less CPU
    than the server it measures (httpx costs ~3x the server's own CPU per request)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            await self.close()
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


async def load(url: str, payloads: dict[str, list[bytes]], requests: int, concurrency: int, timeout: float) -> dict:
    import httpx

    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(requests))
    names = list(payloads)
    stop = time.monotonic() + timeout

    async def worker() -> None:
        conn = Connection(host, int(port))
        try:
            for i in counter:
                if time.monotonic() > stop:
                    errors["not sent (time budget)"] = errors.get("not sent (time budget)", 0) + 1
                    continue
                name = names[i % len(names)]
                bodies = payloads[name]
                start = time.perf_counter()
                try:
                    status, _ = await conn.post(f"/models/{name}/predict", bodies[i % len(bodies)])
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    await conn.close()
                    continue
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)
        finally:
            await conn.close()

    async def batching() -> dict[str, dict]:
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            return {m["name"]: m.get("batching", {}) for m in (await client.get("/models")).json()["models"]}

    before = await batching()
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    stats = {name: {k: v - before[name].get(k, 0) for k, v in s.items()} for name, s in (await batching()).items()}
    return {"latencies": latencies, "errors": errors, "seconds": elapsed, "server": stats}


def summarize(rounds: list[dict], requests: int) -> dict:
    """One mode's figures over its rounds: throughput = requests answered / seconds spent loading."""
    latencies = [t for r in rounds for t in r["latencies"]]
    errors: dict[str, int] = {}
    for r in rounds:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    seconds = sum(r["seconds"] for r in rounds)
    server: dict[str, dict] = {}
    for r in rounds:
        for name, stats in r["server"].items():
            for k, v in stats.items():
                server.setdefault(name, {})[k] = server.get(name, {}).get(k, 0) + v
    ms = np.array(latencies) * 1e3
    return {
        "requests": requests, "ok": len(latencies), "errors": sum(errors.values()), "error_kinds": errors,
        "seconds": round(seconds, 2), "throughput_rps": round(len(latencies) / seconds, 1),
        "throughput_per_round": [round(len(r["latencies"]) / r["seconds"], 1) for r in rounds],
        "latency_ms": {q: round(float(np.percentile(ms, p)), 1) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))} if len(ms) else {},
        "server": {name: {**st, "mean_batch": round(st["items"] / st["passes"], 2) if st.get("passes") else None}
                   for name, st in server.items()},
    }


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), from /proc."""
    if pid is None:
        usage = os.times()
        return usage.user + usage.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_all(runs, payloads, args, work: Path) -> dict[str, dict]:
    """Start one server per mode, then load them in interleaved rounds (the order rotating), so a burst of
    load from elsewhere on the machine hits every mode alike."""
    import httpx

    servers = {mode: start_server(runs, MODES[mode], work / f"server-{mode.replace(' ', '-')}.log") for mode in args.modes}
    try:
        for proc, url in servers.values():
            async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
                await wait_ready(client, proc)
            await load(url, payloads, 200, 16, args.timeout)  # warm-up
        rounds: dict[str, list[dict]] = {mode: [] for mode in servers}
        cpu: dict[str, list[float]] = {mode: [0.0, 0.0] for mode in servers}
        per_round = [args.requests // args.rounds + (i < args.requests % args.rounds) for i in range(args.rounds)]
        order = list(servers)
        for i, n in enumerate(per_round):
            for mode in order[i % len(order):] + order[: i % len(order)]:
                proc, url = servers[mode]
                server0, client0 = cpu_seconds(proc.pid), cpu_seconds()
                rounds[mode].append(await load(url, payloads, n, args.concurrency, args.timeout))
                cpu[mode][0] += cpu_seconds(proc.pid) - server0
                cpu[mode][1] += cpu_seconds() - client0
        results = {}
        for mode in servers:
            results[mode] = summarize(rounds[mode], args.requests)
            ok = max(results[mode]["ok"], 1)
            results[mode]["cpu_ms_per_request"] = {"server": round(1e3 * cpu[mode][0] / ok, 2), "client": round(1e3 * cpu[mode][1] / ok, 2)}
        return results
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in servers.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per mode (default: 5000)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients (default: 64)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the requests are split into (default: 5)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per round before giving up (default: 600)")
    parser.add_argument("--cnn", help="a digits CNN run directory (default: train one)")
    parser.add_argument("--lstm", help="an mnist1d LSTM run directory (default: train one)")
    parser.add_argument("--work", help="where to train and log (default: a temporary folder)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--out", default=str(RESULTS), help=f"JSON results (default: {RESULTS})")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits

    work = Path(args.work or tempfile.mkdtemp(prefix="gridseq-serve-load-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = train_runs(work) if not (args.cnn and args.lstm) else {}
    runs = {"cnn": args.cnn or runs["cnn"], "lstm": args.lstm or runs["lstm"]}
    rng = np.random.default_rng(0)
    images = load_digits().images[rng.permutation(1797)[:256]]  # raw units 0..16, what a client sends
    series = rng.normal(size=(256, 40)).cumsum(axis=1).round(3)  # 40-step series, one feature
    payloads = {"cnn": [json.dumps({"inputs": [a.tolist()]}).encode() for a in images],
                "lstm": [json.dumps({"inputs": [a.tolist()]}).encode() for a in series]}
    print(f"{', '.join(args.modes)}: {args.requests} requests each in {args.rounds} interleaved rounds, "
          f"{args.concurrency} concurrent clients ...", flush=True)
    results = asyncio.run(run_all(runs, payloads, args, work))

    from benchmarks.timing import machine

    record = {"benchmark": "serve_load", "concurrency": args.concurrency, "requests_per_mode": args.requests, "rounds": args.rounds,
              "models": {"cnn": "cnn (default config) on digits 8x8", "lstm": "lstm (default config, hidden 128) on mnist1d, 40 steps"},
              "client": "asyncio keep-alive HTTP/1.1 connections on the same machine", "results": results, "machine": machine(),
              "load_average": os.getloadavg()}
    print("\n| mode | requests | errors | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | mean batch cnn / lstm "
          "| CPU ms/request server / client |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode, r in results.items():
        lat, srv, cpu = r["latency_ms"], r["server"], r["cpu_ms_per_request"]
        print(f"| {mode} | {r['requests']} | {r['errors']} | {r['throughput_rps']} | {lat.get('p50')} | {lat.get('p90')} | "
              f"{lat.get('p99')} | {srv['cnn'].get('mean_batch')} / {srv['lstm'].get('mean_batch')} | {cpu['server']} / {cpu['client']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
