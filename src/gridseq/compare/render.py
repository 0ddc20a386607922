"""report.md and report.html from the report dictionary, plus the rows both (and the terminal) show.

The HTML page is one self-contained file: inline CSS, plots embedded as base64 PNG data URIs, no
scripts, no fonts, no external requests; it reflows on a phone (tables scroll sideways, images
shrink) and prints without the background colours.
"""

from __future__ import annotations

import base64
import html as _html
import math
from typing import Any

VERDICT_STYLE = {"holds": "holds", "does not hold": "fails", "inconclusive": "mixed", "not measured": "na"}


# ---- formatting -----------------------------------------------------------------------------------------

def num(v: float | None, digits: int = 3) -> str:
    """A number for a table: '—' for missing, thousands separators for big ones, else `digits` significant."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.{digits}g}"


def mean_std(stats: dict | None, digits: int = 4) -> str:
    if not stats or stats.get("mean") is None:
        return "—"
    std = stats.get("std")
    return f"{stats['mean']:.{digits}f} ± {std:.{digits}f}" if std is not None and len(stats.get("runs", [])) > 1 else f"{stats['mean']:.{digits}f}"


def flag(v: bool | None) -> str:
    return "—" if v is None else "yes" if v else "no"


def steps_seen(m: dict) -> str:
    rf, seen = m.get("receptive_field"), m.get("input_steps_seen")
    parts = []
    if rf is not None:
        parts.append(f"RF {rf}")
    if seen:
        parts.append("all" if seen["all"] else f"{seen['steps']}/{seen['of']}")
    return ", ".join(parts) or "—"


SUMMARY_COLUMNS = ("model", "family", "params", "metric", "paper", "epochs", "train s", "train samples/s",
                   "latency b1 ms", "b256 items/s", "threads ×", "4T/T latency", "act MB", "step MB", "pad-invariant",
                   "steps seen")


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row of strings per model, in `SUMMARY_COLUMNS` order (the metric column is the primary)."""
    primary = report["task"]["primary"]
    rows = []
    for m in report["models"]:
        ref = m.get("reference")
        ts, ls = m.get("thread_scaling"), m.get("length_scaling")
        epochs = sorted(set(m.get("epochs") or []))
        rows.append([
            m["name"], m["family"], f"{m['parameters']:,}", mean_std(m["metrics"].get(primary)),
            f"{ref['value']:.2f}" if ref else "", "/".join(map(str, epochs)) or "—",
            num((m.get("train_seconds") or {}).get("mean"), 3), num(m.get("train_samples_per_second")),
            num(m.get("latency_ms_b1")), num(m.get("throughput_b256")), num(ts["ratio"], 2) if ts else "—",
            num(ls["ratio"], 2) if ls else "—", num((m.get("memory") or {}).get("activations_mb")),
            num((m.get("memory") or {}).get("train_step_mb")), flag(m.get("padding_invariant")),
            steps_seen(m),
        ])
    return rows


def summary_table(report: dict[str, Any], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of `columns`; the paper column only when the dataset has published figures."""
    if not report.get("references"):
        columns = tuple(c for c in columns if c != "paper")
    index = [SUMMARY_COLUMNS.index(c) for c in columns]
    header = [f"test {report['task']['primary']}" if c == "metric" else c for c in columns]
    return header, [[row[i] for i in index] for row in summary_rows(report)]


def claim_numbers(claim: dict[str, Any]) -> str:
    """The key numbers behind a verdict, in one line."""
    e = claim.get("evidence", {})
    if "reason" in e:
        return e["reason"]
    cid = claim["id"]
    if cid == "cnn_train_faster":
        ratios = ", ".join(f"seed {s}: {num(r, 3)}×" for s, r in e["samples_per_second_ratio"].items())
        tsr = e.get("thread_scaling_ratio")
        return f"conv/recurrent training samples/s: {ratios}" + (f"; thread-scaling ratio conv/recurrent {num(tsr, 3)}" if tsr else "")
    if cid == "cnn_fewer_parameters":
        parts = [f"seed {s}: {v['conv']} {v['conv_parameters']:,} vs {v['recurrent']} {v['recurrent_parameters']:,} "
                 f"at {num(v['level'], 4)}" for s, v in e["per_seed"].items()]
        return "; ".join(parts)
    if cid == "rnn_variable_length":
        inv = ", ".join(f"{k} {flag(v)}" for k, v in e["padding_invariant"].items())
        fixed = ", ".join(e.get("fixed_size_models") or []) or "none"
        return f"padding-invariant: {inv}; reads only the first T steps: {fixed}"
    if cid == "rnn_memory":
        per = "; ".join(f"seed {s}: recurrent {v['recurrent']}, conv {v['convolutional']}" for s, v in e["per_seed"].items())
        return f"longest length solved — {per}"
    if cid == "vanishing_gradients":
        trained = e["first_to_last_trained"]
        parts = [f"{name}: " + ", ".join(num(v, 2) for v in by_seed.values()) for name, by_seed in trained.items()]
        return "‖∂L/∂h_1‖/‖∂L/∂h_T‖ after training — " + "; ".join(parts)
    if cid == "published_ordering":
        per = "; ".join(f"seed {s}: " + ", ".join(f"{n} {num(v, 4)}" for n, v in r["scores"].items())
                        + (f" (swapped: {', '.join(r['swapped'])})" if r["swapped"] else "")
                        + (f" (tied: {', '.join(r['tied'])})" if r["tied"] else "") for s, r in e["per_seed"].items())
        return f"published {e['published_ranking']} ({e['source']}) — {per}"
    return ""


def _setting_lines(report: dict[str, Any]) -> list[str]:
    info = report["data"]["info"]
    env = report["environment"]
    lines = [
        f"dataset: {report['dataset']} ({info['kind']}, input {tuple(info['input_shape'])}, task {report['task']['name']}, "
        f"primary metric {report['task']['primary']}, {'higher' if report['task']['higher_is_better'] else 'lower'} is better)",
        f"seeds: {', '.join(map(str, report['seeds']))}; budget: {report['budget']['description']}",
    ]
    if report.get("lengths"):
        lines.append(f"lengths: {', '.join(map(str, report['lengths']))}")
    threads = env.get("torch_threads")
    lines.append(f"machine: {env.get('cpu')}, {env.get('logical_cpus')} CPUs, trained with {threads} thread{'s' if threads != 1 else ''}, torch {env.get('torch')}, "
                 f"gridseq {env.get('gridseq')}, load average {env.get('loadavg')}")
    lines.append(f"wall time: {report['wall_seconds'] / 60:.1f} min")
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    return lines


def sweep_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    sweep = report["sweep"]
    lengths = [str(x) for x in sweep["lengths"]]
    header = ["model", *[f"T={x}" for x in lengths], "longest solved"]
    rows = []
    for m in report["models"]:
        by_length = sweep["results"].get(m["name"], {})
        cells = []
        for x in lengths:
            s = by_length.get(x, {})
            mark = " ✓" if s.get("solved") else ""
            cells.append(f"{mean_std(s, 4)}{mark}")
        rows.append([m["name"], *cells, str(sweep["longest_solved"].get(m["name"], "—") or "none")])
    return header, rows


# ---- Markdown ------------------------------------------------------------------------------------------

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    header, rows = summary_table(report)
    out = [f"# gridseq compare: {report['dataset']}", ""]
    out += [f"- {line}" for line in _setting_lines(report)]
    out += ["", "## Models", "", _md_table(header, rows), ""]
    refs = report.get("references")
    if refs:
        out += [f"The paper column is {refs['source']}.", ""]
    if report.get("sweep"):
        h, rows = sweep_rows(report)
        out += ["## Memory span", "", f"Solved: {report['sweep']['solved_when']} (✓).", "", _md_table(h, rows), ""]
    out += ["## Claims", "", _md_table(["claim", "verdict", "numbers"],
                                       [[c["claim"], f"**{c['verdict']}**", claim_numbers(c)] for c in report["claims"]]), ""]
    out += ["Each verdict is computed from this run's numbers (rules in report.json under `claims[].evidence.rule`): "
            "*holds* when every seed agrees it held, *does not hold* when every seed agrees it failed, "
            "*inconclusive* when seeds disagree or sit within the tie margin.", ""]
    errors = [(m["name"], e) for m in report["models"] for e in m.get("errors", [])]
    if errors:
        out += ["## Failed runs", ""] + [f"- {n} seed {e['seed']}: {e['error']}" for n, e in errors] + [""]
    if report.get("plots"):
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]] + [""]
    elif report.get("plots_note"):
        out += [f"*{report['plots_note']}*", ""]
    out += ["## What is measured", ""] + [f"- `{k}`: {v}" for k, v in report["measurements"].items()] + [""]
    return "\n".join(out)


# ---- HTML ----------------------------------------------------------------------------------------------

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9d9de; --holds: #137333; --fails: #b3261e; --mixed: #9a6700; --na: #5f6368; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1rem; max-width: 72rem; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.5rem; margin: 0.2rem 0 0.6rem; } h2 { font-size: 1.2rem; margin-top: 1.8rem; border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); font-size: 0.9rem; padding-left: 1.1rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.85rem; min-width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 0.35rem 0.5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.text { white-space: normal; min-width: 16rem; }
thead th { background: #f4f4f6; position: sticky; top: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); gap: 0.8rem; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 0.7rem 0.9rem; break-inside: avoid; }
.card h3 { font-size: 0.95rem; margin: 0 0 0.4rem; }
.card p { margin: 0.3rem 0 0; font-size: 0.85rem; color: var(--muted); overflow-wrap: anywhere; }
.verdict { display: inline-block; font-weight: 600; font-size: 0.8rem; padding: 0.1rem 0.5rem; border-radius: 999px; color: #fff; }
.verdict.holds { background: var(--holds); } .verdict.fails { background: var(--fails); }
.verdict.mixed { background: var(--mixed); } .verdict.na { background: var(--na); }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 0.85rem; }
dl { font-size: 0.85rem; } dt { font-family: ui-monospace, Menlo, Consolas, monospace; margin-top: 0.4rem; } dd { margin-left: 1rem; color: var(--muted); }
@media (max-width: 600px) { body { padding: 0.6rem; font-size: 14px; } th, td { padding: 0.3rem 0.35rem; } }
@media print { body { max-width: none; font-size: 11px; } .verdict { color: #000; background: none !important; border: 1px solid #000; }
               thead th { position: static; background: none; } .scroll { overflow: visible; } figure { break-inside: avoid; } }
"""


def _e(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _html_table(header: list[str], rows: list[list[str]], text_columns: tuple[int, ...] = ()) -> str:
    head = "".join(f'<th{" class=text" if i in text_columns else ""}>{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=text" if i in text_columns else ""}>{_e(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


CAPTIONS = {
    "gradient_flow.png": "‖∂L/∂h_t‖ per step on a log scale: solid after training, dashed at initialisation. "
                         "A line falling to the left is a gradient that vanishes on its way back through time.",
    "latency_vs_length.png": "Batch-1 latency at T, 2T and 4T steps: recurrent models run step after step, so time grows with length.",
    "train_throughput.png": "Training samples per second, and how much inference speeds up from one thread to all.",
    "learning_curves.png": "Validation metric per epoch (first seed).",
    "memory_span.png": "Test metric per sequence length; the dashed line is the 'solved' threshold.",
}


def html(report: dict[str, Any], images: dict[str, bytes]) -> str:
    header, rows = summary_table(report)
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>gridseq compare: {_e(report['dataset'])}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>gridseq compare: {_e(report['dataset'])}</h1>",
        '<ul class="meta">' + "".join(f"<li>{_e(line)}</li>" for line in _setting_lines(report)) + "</ul>",
        "<h2>Claims</h2>", '<div class="cards">',
    ]
    for c in report["claims"]:
        style = VERDICT_STYLE.get(c["verdict"], "na")
        parts.append(f'<div class="card"><h3>{_e(c["claim"])}</h3><span class="verdict {style}">{_e(c["verdict"])}</span>'
                     f"<p>{_e(claim_numbers(c))}</p></div>")
    parts.append("</div>")
    parts.append('<p class="meta">Verdicts are computed from the numbers of this run: <b>holds</b> when every seed agrees '
                 "it held, <b>does not hold</b> when every seed agrees it failed, <b>inconclusive</b> when seeds disagree "
                 "or sit within the tie margin. The rules are in report.json.</p>")
    parts += ["<h2>Models</h2>", _html_table(header, rows)]
    refs = report.get("references")
    if refs:
        parts.append(f'<p class="meta">The paper column is {_e(refs["source"])}.</p>')
    if report.get("sweep"):
        h, rows = sweep_rows(report)
        parts += ["<h2>Memory span</h2>", f'<p class="meta">Solved: {_e(report["sweep"]["solved_when"])} (✓).</p>',
                  _html_table(h, rows)]
    errors = [(m["name"], e) for m in report["models"] for e in m.get("errors", [])]
    if errors:
        parts += ["<h2>Failed runs</h2>", "<ul>" + "".join(f"<li>{_e(n)} seed {e['seed']}: {_e(e['error'])}</li>" for n, e in errors) + "</ul>"]
    if images:
        parts.append("<h2>Plots</h2>")
        for name, png in images.items():
            data = base64.b64encode(png).decode("ascii")
            caption = CAPTIONS.get(name, name.replace("_", " ").removesuffix(".png"))
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(name)}"><figcaption>{_e(caption)}</figcaption></figure>')
    elif report.get("plots_note"):
        parts.append(f'<p class="meta">{_e(report["plots_note"])}</p>')
    parts.append("<h2>What is measured</h2><dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in report["measurements"].items()) + "</dl>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
