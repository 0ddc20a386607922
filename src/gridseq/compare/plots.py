"""The report's PNG plots, drawn from the report dictionary with matplotlib (optional).

    <primary>_vs_parameters.png  test metric (mean ± std over seeds) against parameter count
    train_throughput.png         training samples/s and thread scaling per model
    learning_curves.png          validation primary metric per epoch (first seed)
    latency_vs_length.png        batch-1 latency at T, 2T, 4T steps
    gradient_flow.png            ‖∂L/∂h_t‖ per step, log scale, at initialisation and after training
    memory_span.png              (length sweeps) test metric against sequence length

Without matplotlib (`pip install 'gridseq[plot]'`) `make_plots` returns no images and a note that
says so; the reports are written without plots.
"""

from __future__ import annotations

import io
from typing import Any

FAMILY_COLORS = {"baseline": "#7f7f7f", "convolutional": "#1f77b4", "recurrent": "#d62728", "hybrid": "#2ca02c"}
MARKERS = "osD^v<>px*h"


def _color(model: dict) -> str:
    """The family's colour (bars)."""
    return FAMILY_COLORS.get(model.get("family"), "#444444")


def _model_colors(report: dict) -> dict[str, Any]:
    """One distinct colour per model (lines and points), the same in every plot of a report."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return {m["name"]: palette(i % 10) for i, m in enumerate(report["models"])}


def make_plots(report: dict[str, Any]) -> tuple[dict[str, bytes], str | None]:
    """({file name: PNG bytes}, note): the note explains missing plots (no matplotlib), else None."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "plots need matplotlib: pip install 'gridseq[plot]' (the tables and claims are complete without them)"
    images: dict[str, bytes] = {}
    makers = [_metric_vs_parameters, _throughput, _learning_curves, _latency_vs_length, _gradient_flow, _memory_span]
    with plt.rc_context({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False}):
        for make in makers:
            made = make(report, plt)
            if made is None:
                continue
            name, fig = made
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            plt.close(fig)
            images[name] = buffer.getvalue()
    return images, None


def _title(report: dict, what: str) -> str:
    return f"{report['dataset']}: {what}"


def _metric_vs_parameters(report, plt):
    primary = report["task"]["primary"]
    models = [m for m in report["models"] if m["metrics"].get(primary, {}).get("mean") is not None]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _model_colors(report)
    for i, m in enumerate(models):
        s = m["metrics"][primary]
        ax.errorbar(m["parameters"], s["mean"], yerr=s["std"] or 0, fmt=MARKERS[i % len(MARKERS)], color=colors[m["name"]],
                    capsize=3, label=m["name"])
        ax.annotate(m["name"], (m["parameters"], s["mean"]), textcoords="offset points", xytext=(5, 4))
        ref = m.get("reference")
        if ref and ref["metric"] == primary:
            ax.scatter([m["parameters"]], [ref["value"]], facecolors="none", edgecolors=colors[m["name"]], marker=MARKERS[i % len(MARKERS)])
    if any(m.get("reference") for m in models):
        ax.scatter([], [], facecolors="none", edgecolors="#444", label="paper (hollow)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(f"test {primary} (mean ± std over seeds)")
    if not report["task"]["higher_is_better"]:
        ax.set_yscale("log")
    ax.set_title(_title(report, f"test {primary} vs parameters"))
    ax.legend(fontsize=7, loc="best")
    return f"{primary}_vs_parameters.png", fig


def _throughput(report, plt):
    models = [m for m in report["models"] if m.get("train_samples_per_second")]
    if not models:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 0.5 + 0.35 * len(models) + 1))
    names = [m["name"] for m in models]
    ax1.barh(names, [m["train_samples_per_second"] for m in models], color=[_color(m) for m in models])
    ax1.set_xscale("log")
    ax1.set_xlabel("training samples/s (log scale)")
    ax1.invert_yaxis()
    scaling = [(m["thread_scaling"] or {}).get("ratio") or 0 for m in models]
    threads = next((m["thread_scaling"]["threads"] for m in models if m.get("thread_scaling")), None)
    ax2.barh(names, scaling, color=[_color(m) for m in models])
    ax2.axvline(1.0, color="#999", lw=0.8)
    ax2.set_xlabel(f"inference throughput, {threads} threads / 1 thread" if threads else "thread scaling")
    ax2.invert_yaxis()
    from matplotlib.patches import Patch

    families = list(dict.fromkeys(m["family"] for m in models))
    ax2.legend(handles=[Patch(color=FAMILY_COLORS.get(f, "#444444"), label=f) for f in families], fontsize=7, loc="lower right")
    fig.suptitle(_title(report, "training throughput and thread scaling"))
    return "train_throughput.png", fig


def _learning_curves(report, plt):
    primary = report["task"]["primary"]
    key = f"val_{primary}"
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _model_colors(report)
    drawn = False
    for m in report["models"]:
        history = next(iter(m.get("history", {}).values()), None)
        points = [(h["epoch"], h[key]) for h in history or [] if h.get(key) is not None]
        if points:
            ax.plot(*zip(*points), color=colors[m["name"]], label=m["name"], marker=".", ms=3, lw=1)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {primary} (first seed)")
    if not report["task"]["higher_is_better"]:
        ax.set_yscale("log")
    ax.set_title(_title(report, "learning curves"))
    ax.legend(fontsize=7)
    return "learning_curves.png", fig


def _latency_vs_length(report, plt):
    models = [m for m in report["models"] if m.get("length_scaling")]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _model_colors(report)
    for i, m in enumerate(models):
        ls = m["length_scaling"]
        style = "-" if m.get("reads_whole_input") is not False else ":"
        ax.plot(ls["lengths"], ls["latency_ms"], style, marker=MARKERS[i % len(MARKERS)], color=colors[m["name"]], label=m["name"])
    ax.set_xscale("log", base=2)
    lengths = models[0]["length_scaling"]["lengths"]
    ax.set_xticks(lengths, [str(x) for x in lengths])
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (steps)")
    ax.set_ylabel("batch-1 latency (ms, median)")
    ax.set_title(_title(report, "latency vs length (dotted: model reads only the first T steps)"))
    ax.legend(fontsize=7)
    return "latency_vs_length.png", fig


def _gradient_curves(report) -> list[tuple[str, str, list, list | None]]:
    """(label, model name, trained norms, init norms) per recurrent model; a sweep's at its gradient length."""
    curves = []
    sweep = report.get("sweep")
    for m in report["models"]:
        if sweep:
            s = sweep["results"].get(m["name"], {}).get(str(sweep.get("gradient_length")), {})
            if s.get("gradient_norms"):
                curves.append((f"{m['name']} (T={sweep['gradient_length']})", m["name"], s["gradient_norms"],
                               s.get("gradient_norms_init")))
        elif m.get("gradient_flow"):
            g = m["gradient_flow"]
            curves.append((m["name"], m["name"], g["trained"], g.get("init")))
    return curves


def _gradient_flow(report, plt):
    curves = _gradient_curves(report)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = _model_colors(report)
    for label, name, trained, init in curves:
        color = colors[name]
        steps = range(1, len(trained) + 1)
        ax.plot(steps, [max(v, 1e-30) for v in trained], "-", color=color, label=f"{label}, trained")
        if init:
            ax.plot(steps, [max(v, 1e-30) for v in init], "--", color=color, alpha=0.6, label=f"{label}, at init")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("‖∂L/∂h_t‖ (mean over test items)")
    ax.set_title(_title(report, "gradient flow through time"))
    ax.legend(fontsize=7)
    return "gradient_flow.png", fig


def _memory_span(report, plt):
    sweep = report.get("sweep")
    if not sweep:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _model_colors(report)
    for i, m in enumerate(report["models"]):
        by_length = sweep["results"].get(m["name"], {})
        points = sorted((int(k), v["mean"]) for k, v in by_length.items() if v.get("mean") is not None)
        if points:
            ax.plot(*zip(*points), marker=MARKERS[i % len(MARKERS)], color=colors[m["name"]], label=m["name"])
    if sweep.get("threshold") is not None:
        ax.axhline(sweep["threshold"], color="#2ca02c", ls="--", lw=1, label=f"solved: {sweep['solved_when']}")
    if sweep.get("baseline") is not None:
        ax.axhline(sweep["baseline"], color="#999", ls=":", lw=1, label="trivial baseline")
    ax.set_xscale("log")
    ax.set_xticks(sweep["lengths"], [str(x) for x in sweep["lengths"]])
    ax.minorticks_off()
    ax.set_xlabel("sequence length (steps)")
    ax.set_ylabel(f"test {sweep['metric']}")
    if not report["task"]["higher_is_better"]:
        ax.set_yscale("log")
    ax.set_title(_title(report, "memory span"))
    ax.legend(fontsize=7)
    return "memory_span.png", fig
