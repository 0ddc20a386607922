"""Test accuracy of gridseq's time-series classifiers on UCR/UEA archive datasets, beside published figures.

Each (dataset, model, seed) is trained exactly as `gridseq train DATASET --model MODEL --seed SEED`
would with no other flag (the settings come from `gridseq.defaults`), except `--epochs`, which
overrides the table for a quicker grid. Every finished run is appended to the JSON file at once, so
an interrupted grid keeps its results and a rerun skips what is done (with the same settings: a
changed default reruns its cells).

    python benchmarks/ucr_table.py                         # the full grid: 4 datasets x 6 models x 3 seeds
    python benchmarks/ucr_table.py --datasets ucr/gunpoint --models fcn --seeds 0 1 2
    python benchmarks/ucr_table.py --table-only            # rewrite the markdown from the JSON
    python benchmarks/ucr_table.py --cv 5 --models fcn     # the small-data protocol (below)

Writes benchmarks/results/ucr_table.json (one record per run) and ucr_table.md (mean ± std over seeds).

With `--cv K` each cell runs the small-data protocol instead (`gridseq train DATASET --model MODEL --seed S
--cv K --refit`): K-fold cross-validation of the defaults on the training items (train + val) chooses the
epoch count, then one run on all training items for that many epochs is scored on test, once. Its records go
to ucr_cv_refit.json / ucr_cv_refit.md; with `--follow-schedule` the refit keeps the folds' learning-rate
schedule and stops at the chosen epoch (`refit(horizon=cv.epochs)`), records in ucr_cv_refit_follow.*.
Needs the `ucr` extra (pip install 'gridseq[ucr]').
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gridseq import datasets, defaults, models, train
from gridseq._atomic import atomic_write_text
from gridseq.train import crossval

DATASETS = ("ucr/gunpoint", "ucr/italypowerdemand", "ucr/basicmotions", "ucr/japanesevowels")
MODELS = ("fcn", "resnet1d", "lstm", "gru", "lstm-fcn", "tcn")
# Published test accuracy (%). Fawaz et al. 2019, "Deep learning for time series classification: a
# review": mean over 10 runs, from the authors' results files (hfawaz/dl-4-tsc results/results-uea-avg-std.csv
# for the UCR 2015 univariate archive, results-mts-avg-std.csv for Baydogan's MTS archive, which holds
# JapaneseVowels). Wang et al. 2017 (UCR 2015, error rates converted to accuracy) are quoted from memory
# and NOT verified here. None = not reported (BasicMotions is in neither paper).
PUBLISHED = {
    "ucr/gunpoint": {"fcn_fawaz": 100.0, "resnet_fawaz": 99.1, "fcn_wang": 100.0, "resnet_wang": 99.3},
    "ucr/italypowerdemand": {"fcn_fawaz": 96.1, "resnet_fawaz": 96.3, "fcn_wang": 97.0, "resnet_wang": 96.0},
    "ucr/basicmotions": {"fcn_fawaz": None, "resnet_fawaz": None, "fcn_wang": None, "resnet_wang": None},
    "ucr/japanesevowels": {"fcn_fawaz": 99.3, "resnet_fawaz": 99.2, "fcn_wang": None, "resnet_wang": None},
    # the other classification datasets bundled with aeon (Fawaz's results-uea-avg-std.csv; ACSF1 and
    # PickupGestureWiimoteZ are from the 2018 archive, in neither paper)
    "ucr/arrowhead": {"fcn_fawaz": 84.3, "resnet_fawaz": 84.5, "fcn_wang": None, "resnet_wang": None},
    "ucr/osuleaf": {"fcn_fawaz": 97.7, "resnet_fawaz": 97.9, "fcn_wang": None, "resnet_wang": None},
}
OUT = Path(__file__).parent / "results"


def run_one(dataset: str, model: str, seed: int, epochs: int | None) -> dict:
    """Train one model as `gridseq train` does with no flags (plus --epochs) and return its record."""
    settings = defaults.lookup(dataset, model)
    train_kw = {**settings["train"], **({"epochs": epochs} if epochs else {})}
    return run_one_with(dataset, model, seed, train_kw, settings["model"])


def run_one_with(dataset: str, model: str, seed: int, train_kw: dict, model_kw: dict) -> dict:
    """Train one model with these settings on the dataset's own splits and return its record."""
    data = datasets.load(dataset, seed=seed)
    train.seed_everything(seed)
    fields = {f for f in models.entry(model).config_cls.__dataclass_fields__}
    net = models.create_for(model, data.info, **{k: v for k, v in model_kw.items() if k in fields})
    started = time.perf_counter()
    result = train.fit(net, data, seed=seed, progress=False, **train_kw)
    return {
        "dataset": dataset, "model": model, "seed": seed, "epochs": train_kw["epochs"],
        "test_accuracy": result.test["accuracy"], "val_accuracy": result.val.get("accuracy"),
        "seconds": round(time.perf_counter() - started, 1), "train": train_kw, "model_settings": model_kw,
        "parameters": sum(p.numel() for p in net.parameters()),
    }


def run_cv_refit(dataset: str, model: str, seed: int, folds: int, epochs: int | None, follow: bool = False) -> dict:
    """The small-data protocol for one cell, as `gridseq train DATASET --model MODEL --seed S --cv K --refit`."""
    settings = defaults.lookup(dataset, model)
    train_kw = {**settings["train"], **({"epochs": epochs} if epochs else {})}
    data = datasets.load(dataset, seed=seed)
    fields = {f for f in models.entry(model).config_cls.__dataclass_fields__}
    model_kw = {k: v for k, v in settings["model"].items() if k in fields}

    def build():
        return models.create_for(model, data.info, **model_kw)

    fit_kw = {k: v for k, v in train_kw.items() if k not in ("select", "patience")}
    started = time.perf_counter()
    cv = crossval.cross_validate(build, data, folds=folds, seed=seed, progress=False, **fit_kw)
    horizon = cv.epochs if follow else cv.best_epochs  # --follow-schedule: the folds' schedule, stopped at the count
    result = crossval.refit(build, data, seed=seed, cv=cv, progress=False, horizon=horizon,
                            **{**fit_kw, "epochs": cv.best_epochs})
    return {
        "dataset": dataset, "model": model, "seed": seed, "folds": folds, "epochs": cv.best_epochs, "horizon": horizon,
        "test_accuracy": result.test["accuracy"], "cv_accuracy": cv.mean, "cv_std": cv.std,
        "seconds": round(time.perf_counter() - started, 1), "train": train_kw, "model_settings": settings["model"],
    }


def append(json_path: Path, record: dict, fields: tuple[str, ...] = ("dataset", "model", "seed")) -> list[dict]:
    """Add one record to the JSON file, replacing an older record with the same `fields` (a run of the
    same cell and seed).

    The file is re-read under a lock, so two grid processes (e.g. one per core, on different models)
    can share one results file without overwriting each other's runs.
    """
    key = tuple(record[f] for f in fields)
    digest = hashlib.sha1(str(json_path.resolve()).encode()).hexdigest()[:12]  # the lock stays out of the tree
    with open(Path(tempfile.gettempdir()) / f"gridseq-ucr-table-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = json.loads(json_path.read_text()) if json_path.exists() else []
        records = [r for r in records if tuple(r.get(f) for f in fields) != key] + [record]
        atomic_write_text(json_path, json.dumps(records, indent=1))
    return records


def table(records: list[dict]) -> str:
    """Markdown: one row per dataset, mean ± std of test accuracy (%) per model, then published figures."""
    names = [m for m in MODELS if any(r["model"] == m for r in records)]
    head = ["dataset", *names, "FCN (Fawaz)", "ResNet (Fawaz)", "FCN (Wang)", "ResNet (Wang)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for dataset in dict.fromkeys([*DATASETS, *(r["dataset"] for r in records)]):
        if not any(r["dataset"] == dataset for r in records):
            continue
        cells = [dataset]
        for model in names:
            accs = [100 * r["test_accuracy"] for r in records if r["dataset"] == dataset and r["model"] == model]
            if not accs:
                cells.append("–")
                continue
            spread = f" ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else ""
            cells.append(f"{statistics.mean(accs):.1f}{spread} (n={len(accs)})")
        pub = PUBLISHED.get(dataset, {})
        cells += ["–" if pub.get(k) is None else f"{pub[k]:.1f}" for k in ("fcn_fawaz", "resnet_fawaz", "fcn_wang", "resnet_wang")]
        lines.append("| " + " | ".join(cells) + " |")
    seconds = {m: statistics.mean(r["seconds"] for r in records if r["model"] == m) for m in names}
    lines.append("")
    lines.append("gridseq: mean ± std test accuracy (%) over n seeds. Fawaz: mean of 10 runs (authors' results files); "
                 "Wang: quoted from memory, unverified.")
    lines.append("")
    lines.append("Mean training time per run (s): " + ", ".join(f"{m} {s:.0f}" for m, s in seconds.items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the defaults table's epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the machine is shared)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cv", type=int, default=None, metavar="K",
                        help="run the small-data protocol: K-fold cross-validation chooses the epochs, then a refit")
    parser.add_argument("--follow-schedule", action="store_true",
                        help="with --cv: refit on the folds' learning-rate schedule, stopped at the chosen epoch")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the markdown from the JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = ("ucr_cv_refit_follow" if args.follow_schedule else "ucr_cv_refit") if args.cv else "ucr_table"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    records = json.loads(json_path.read_text()) if json_path.exists() else []
    if not args.table_only:
        for dataset in args.datasets:
            for model in args.models:
                for seed in args.seeds:
                    settings = defaults.lookup(dataset, model)
                    train_kw = {**settings["train"], **({"epochs": args.epochs} if args.epochs else {})}
                    # a record counts only if it ran with today's settings (a changed default reruns its cells)
                    done = [r for r in records if (r["dataset"], r["model"], r["seed"]) == (dataset, model, seed)
                            and r["train"] == train_kw and r.get("model_settings", {}) == settings["model"]]
                    if done:
                        continue
                    if args.cv:
                        record = run_cv_refit(dataset, model, seed, args.cv, args.epochs, args.follow_schedule)
                    else:
                        record = run_one(dataset, model, seed, args.epochs)
                    records = append(json_path, record)
                    print(f"{dataset:24s} {model:9s} seed {seed}: test {record['test_accuracy']:.4f} "
                          f"({record['seconds']:.0f} s)", flush=True)
    records = json.loads(json_path.read_text()) if json_path.exists() else []
    md_path.write_text(table(records))
    print(md_path.read_text())


if __name__ == "__main__":
    main()
