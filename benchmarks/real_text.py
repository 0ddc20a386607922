"""Real text against classical baselines, on the splits `gridseq train` uses (seed 0), the test split scored once.

- translation (bible-en-es, English → Spanish): a trained `seq2seq` run (`--run`, written by
  `gridseq train bible-en-es --model seq2seq`) decoded greedily and with beam search, against the IBM Model 1
  word-by-word baseline (gridseq.baselines.IBM1, 5 EM iterations on the training pairs); all scored by the
  same sacreBLEU call (gridseq.tasks.translation.corpus_scores: corpus BLEU-4 and chrF of detokenised text,
  in [0, 1]; sacreBLEU prints 100x), plus three test verses translated by each.
- language modelling (bible-en): a trained `lstm` run (`--lm-run`, from `gridseq train bible-en --model lstm`)
  against an interpolated Kneser-Ney character 5-gram fitted on the same training text
  (benchmarks/text_baselines.py `char_kn`), test bits per character of each.

    python benchmarks/real_text.py --run runs/bible-en-es-seq2seq-s0 --lm-run runs/bible-en-lstm-s0
    python benchmarks/real_text.py --only translation --run RUN --beam 5

Prints a table and writes benchmarks/results/real_text.json (and real_text.md). A run not given is left out
(the baselines are still measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gridseq.datasets as gd  # noqa: E402
from benchmarks.text_baselines import char_kn  # noqa: E402
from gridseq.baselines import IBM1  # noqa: E402
from gridseq.tasks.translation import corpus_scores  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EXAMPLES = (0, 1000, 2500)  # test verses shown (indices into the test split)


def _evaluate(run_dir: str, beam: int | None) -> dict:
    from gridseq import train
    from gridseq.runs import Run

    run = Run.open(run_dir)
    data = run.reload_data()
    task = run.task
    if beam is not None:
        task.configure(beam=beam)
    started = time.perf_counter()
    metrics = train.evaluate(run.model, data.test, task=task, batch_size=128)
    return {**metrics, "seconds": round(time.perf_counter() - started, 1)}


def translation(run_dir: str | None, beam: int) -> list[dict]:
    data = gd.load("bible-en-es", seed=0)
    started = time.perf_counter()
    ibm1 = IBM1.fit(list(data.train.texts), list(data.train.targets), iterations=5)
    hypotheses = ibm1.translate(list(data.test.texts))
    rows = [{"dataset": "bible-en-es", "system": "IBM Model 1 word-by-word (5 EM iterations)",
             **corpus_scores(hypotheses, list(data.test.targets)), "seconds": round(time.perf_counter() - started, 1),
             "examples": [{"source": data.test.texts[i], "reference": data.test.targets[i], "output": hypotheses[i]}
                          for i in EXAMPLES]}]
    if run_dir is not None:
        from gridseq.predict import Predictor

        predictor = Predictor.from_run(run_dir)
        for width in (1, beam):
            metrics = _evaluate(run_dir, None if width == 1 else width)
            outputs = predictor.predict([data.test.texts[i] for i in EXAMPLES], beam=width)["predictions"]
            rows.append({"dataset": "bible-en-es", "system": f"seq2seq {'greedy' if width == 1 else f'beam {width}'}",
                         "run": run_dir, **{k: metrics[k] for k in ("bleu4", "chrf", "loss", "seconds")},
                         "examples": [{"source": data.test.texts[i], "reference": data.test.targets[i], "output": o}
                                      for i, o in zip(EXAMPLES, outputs)]})
    return rows


def language_model(run_dir: str | None) -> list[dict]:
    started = time.perf_counter()
    kn = char_kn("bible-en")
    rows = [{"dataset": "bible-en", "system": kn["baseline"], "bits_per_char": kn["test_bits_per_char"],
             "val_bits_per_char": kn["val_bits_per_char"], "seconds": round(time.perf_counter() - started, 1)}]
    if run_dir is not None:
        metrics = _evaluate(run_dir, None)
        rows.append({"dataset": "bible-en", "system": "lstm", "run": run_dir, "bits_per_char": metrics["bits_per_char"],
                     "seconds": metrics["seconds"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=("translation", "lm"), default=["translation", "lm"])
    parser.add_argument("--run", help="a bible-en-es seq2seq run directory")
    parser.add_argument("--lm-run", help="a bible-en lstm run directory")
    parser.add_argument("--beam", type=int, default=5, help="beam width beside greedy decoding (default: 5)")
    args = parser.parse_args()
    rows = []
    if "translation" in args.only:
        rows += translation(args.run, args.beam)
    if "lm" in args.only:
        rows += language_model(args.lm_run)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "real_text.json"
    merged = json.loads(out.read_text()) if out.exists() else {}
    merged.update({f"{r['dataset']}/{r['system']}": r for r in rows})  # earlier runs' rows are kept
    lines = ["| dataset | system | test BLEU (100 x bleu4) | test chrF (100 x chrf) | test bits/char | seconds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in merged.values():
        bleu = f"{100 * r['bleu4']:.2f}" if "bleu4" in r else ""
        chrf = f"{100 * r['chrf']:.2f}" if "chrf" in r else ""
        bpc = f"{r['bits_per_char']:.3f}" if "bits_per_char" in r else ""
        lines.append(f"| {r['dataset']} | {r['system']} | {bleu} | {chrf} | {bpc} | {r['seconds']} |")
    print("\n".join(lines))
    out.write_text(json.dumps(merged, indent=2, ensure_ascii=False, default=float) + "\n")
    (RESULTS / "real_text.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
