"""Render a results JSON from run.py as the Markdown table of docs/PERFORMANCE.md (a ratio measured round by
round shows the range of its per-round ratios beside it).

    python -m benchmarks.report results.json [more.json ...]
"""

from __future__ import annotations

import json
import sys


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def markdown(paths: list[str]) -> str:
    rows = ["| benchmark | ratio | target | met | key figures |", "| --- | ---: | ---: | --- | --- |"]
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        for r in doc["results"]:
            target = "—" if r["target"] is None else ("≤ " if r.get("direction") == "at most" else "≥ ") + f"{r['target']:g}"
            met = {True: "yes", False: "**no**", None: "report"}[r["met"]] if not r.get("skipped") else "skipped"
            fig = r["figures"]
            key = fig.get("samples_per_s") or fig.get("ms_per_step") or fig.get("ms_per_batch") or fig.get("ms_batch1") or {
                k: fig[k] for k in ("achieved_gflops", "gemm_gflops") if k in fig}
            ratio = _fmt(r["ratio"]) + (" ({:.2f}–{:.2f})".format(*r["ratio_spread"]) if r.get("ratio_spread") else "")
            rows.append(f"| {r['name']} | {ratio} | {target} | {met} | {json.dumps(key)[:110]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown(sys.argv[1:]))
