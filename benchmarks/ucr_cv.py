"""Choose a model's settings for a UCR/UEA dataset by k-fold cross-validation on the archive's training set.

The archive's training sets are small (JapaneseVowels: 270 series), so a 10% validation split is a
couple of dozen series and ties at 100% for most settings. Cross-validation scores every candidate on
every training series instead: the training set (train + val splits of `datasets.load`, i.e. the
archive's own TRAIN file) is cut into k stratified folds with a fixed seed, and each candidate is
trained k times, `gridseq train`'s defaults plus the candidate's overrides, and scored on the held-out
fold. The test split is never read. The candidate with the most correct held-out predictions wins
(ties: the lower mean held-out loss); `--test` then trains the winner on the usual splits with seeds
0, 1, 2 and reports test accuracy, as `benchmarks/ucr_table.py` does.

    python benchmarks/ucr_cv.py --dataset ucr/japanesevowels --model lstm            # the candidates below
    python benchmarks/ucr_cv.py --dataset ucr/japanesevowels --model lstm --test     # then the winner on test
    python benchmarks/ucr_cv.py ... --part 0/2 & python benchmarks/ucr_cv.py ... --part 1/2   # two processes

Writes benchmarks/results/ucr_cv_<dataset>_<model>.json (one record per candidate and fold, appended as
they finish, so an interrupted search resumes). Normalisation: with `normalize="channel"` the statistics
come from the load's training split (90% of the archive's training set), which overlaps the held-out
folds; this touches only the choice between candidates, never the test split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from ucr_table import append, run_one_with

from gridseq import datasets, defaults, models, train
from gridseq.data.contract import Dataset, Split

OUT = Path(__file__).parent / "results"
# candidate overrides of the defaults: {"model": {...}, "train": {...}}; "default" changes nothing
CANDIDATES = {
    "default": {},
    "hidden 64": {"model": {"hidden_size": 64}},
    "hidden 256": {"model": {"hidden_size": 256}},
    "2 layers, dropout 0.3": {"model": {"num_layers": 2, "dropout": 0.3}},
    "mean pooling": {"model": {"pooling": "mean"}},
    "100 epochs": {"train": {"epochs": 100}},
    "adamw 1e-2": {"train": {"optimizer": "adamw", "weight_decay": 1e-2}},
}


def folds(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) per item, stratified: each class's items are shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    start = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx] = (start + np.arange(len(idx))) % k
        start += len(idx)  # the next class continues the deal, so fold sizes differ by at most one
    return out


def _pool(data: Dataset) -> Split:
    """The train and val splits as one Split (the archive's TRAIN file), padded to the same length."""
    a, b = data.train, data.val
    t = max(a.x.shape[1], b.x.shape[1])
    pad = lambda x: torch.nn.functional.pad(x, (0, 0, 0, t - x.shape[1])) if x.dim() == 3 else x  # noqa: E731
    lengths = None if a.lengths is None else torch.cat([a.lengths, b.lengths])
    return Split(torch.cat([pad(a.x), pad(b.x)]), torch.cat([a.y, b.y]), lengths)


def _sub(split: Split, idx: np.ndarray) -> Split:
    i = torch.from_numpy(idx)
    return Split(split.x[i], split.y[i], None if split.lengths is None else split.lengths[i])


def settings(dataset: str, model: str, candidate: dict) -> tuple[dict, dict]:
    base = defaults.lookup(dataset, model)
    return {**base["train"], **candidate.get("train", {})}, {**base["model"], **candidate.get("model", {})}


def run_fold(dataset: str, model: str, name: str, fold: int, k: int) -> dict:
    data = datasets.load(dataset, seed=0)
    pool = _pool(data)
    where = folds(pool.y.numpy(), k)
    held = _sub(pool, np.flatnonzero(where == fold))
    cv = Dataset(data.info, _sub(pool, np.flatnonzero(where != fold)), held, held)
    train_kw, model_kw = settings(dataset, model, CANDIDATES[name])
    train.seed_everything(fold)
    net = models.create_for(model, data.info, **model_kw)
    started = time.perf_counter()
    result = train.fit(net, cv, seed=fold, progress=False, **train_kw)
    return {"candidate": name, "fold": fold, "k": k, "held_out": len(held), "correct": round(result.test["accuracy"] * len(held)),
            "accuracy": result.test["accuracy"], "loss": result.test["loss"], "seconds": round(time.perf_counter() - started, 1),
            "train": train_kw, "model": model_kw}


def summary(records: list[dict], k: int) -> list[dict]:
    """Per candidate with all k folds done: correct held-out predictions, accuracy, mean loss; best first."""
    rows = []
    for name in CANDIDATES:
        mine = [r for r in records if r["candidate"] == name and r["k"] == k]
        if len({r["fold"] for r in mine}) < k:
            continue
        n = sum(r["held_out"] for r in mine)
        correct = sum(r["correct"] for r in mine)
        rows.append({"candidate": name, "correct": correct, "of": n, "cv_accuracy": correct / n,
                     "cv_loss": statistics.fmean(r["loss"] for r in mine)})
    return sorted(rows, key=lambda r: (-r["correct"], r["cv_loss"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ucr/japanesevowels")
    p.add_argument("--model", default="lstm")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    p.add_argument("--part", default="0/1", help="i/n: run every n-th (candidate, fold) job starting at i")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--test", action="store_true", help="train the winner with seeds 0-2 and report test accuracy")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"ucr_cv_{args.dataset.replace('/', '_')}_{args.model}.json"
    records = json.loads(path.read_text()) if path.exists() else []
    done = {(r["candidate"], r["fold"]) for r in records if r["k"] == args.k}
    i, n = (int(v) for v in args.part.split("/"))
    jobs = [(c, f) for c in args.candidates for f in range(args.k)]
    for c, f in jobs[i::n]:
        if (c, f) in done:
            continue
        record = run_fold(args.dataset, args.model, c, f, args.k)
        append(path, record, fields=("candidate", "fold", "k"))
        print(f"{c:24s} fold {f}: {record['correct']}/{record['held_out']} loss {record['loss']:.4f} ({record['seconds']} s)", flush=True)
    records = json.loads(path.read_text()) if path.exists() else []
    rows = summary(records, args.k)
    print(f"\n{args.dataset} {args.model}, {args.k}-fold CV on the archive's training set:")
    for r in rows:
        print(f"  {r['candidate']:24s} {r['correct']}/{r['of']} = {r['cv_accuracy']:.4f}  mean held-out loss {r['cv_loss']:.4f}")
    if args.test and rows:
        best = rows[0]["candidate"]
        train_kw, model_kw = settings(args.dataset, args.model, CANDIDATES[best])
        accs = [run_one_with(args.dataset, args.model, s, train_kw, model_kw)["test_accuracy"] for s in (0, 1, 2)]
        print(f"winner {best!r}: test accuracy seeds 0-2 {[round(a, 4) for a in accs]}, mean {statistics.fmean(accs):.4f}")


if __name__ == "__main__":
    main()
