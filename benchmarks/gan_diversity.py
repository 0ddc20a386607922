"""Mode collapse of digits generators: per-class accuracy and within-class spread of their samples under
the generate-image task's frozen classifier (`gridseq.tasks.sample_diversity.diversity`), one JSON line
per run, with the run's own val/test class_accuracy and fid from metrics.json.

    python benchmarks/gan_diversity.py val runs/digits-dcgan-s0 runs/digits-dcgan-s1 ...
"""

import json
import sys

import torch

import gridseq
from gridseq.tasks.sample_diversity import diversity


def main(split_name: str, runs: list[str]) -> None:
    torch.set_num_threads(1)
    data = gridseq.datasets.load("digits")
    split = getattr(data, split_name)
    for run in runs:
        d = diversity(gridseq.load(run), data.train, split, data.info)
        with open(f"{run}/metrics.json") as f:
            metrics = json.load(f)
        scores = lambda s, m=metrics: {k: round(v, 3) for k, v in m.get(s, {}).items() if k in ("fid", "class_accuracy")}  # noqa: E731
        print(json.dumps({"run": run, "split": split_name, "class_accuracy": round(d["class_accuracy"], 3),
                          "feature_spread": round(d["feature_spread"], 3), "pixel_spread": round(d["pixel_spread"], 3),
                          "covered_classes": d["covered_classes"],
                          "min_class_feature_spread": round(min(r["feature_spread"] for r in d["per_class"]), 3),
                          "val": scores("val"), "test": scores("test")}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
