"""Per-dataset, per-model training defaults: the one place `gridseq train` looks up sensible settings,
so that `gridseq train digits --model cnn` needs no other flag.

Precedence (highest first): an explicit command-line flag, then this table, then `gridseq.train.fit`'s
own defaults (for training settings) or the model's config defaults (for architecture settings).

Each entry maps (dataset, model) to two optional sections: "train" (keyword arguments of
`gridseq.train.fit`, e.g. epochs, lr) and "model" (model config fields, e.g. hidden_size). "*" matches
any dataset or model; a family pattern "ucr/*" matches every dataset named "ucr/<something>". User
files match the "*" entries and the entries of their reader, written "<reader>" after the preprocessing
record's "source" (`"<image_folder>"`: class folders of photos). More specific entries win key by key:
("*", "*") < ("ucr/*" or "<reader>", "*") < (dataset, "*") < ("*", model) < ("ucr/*" or "<reader>", model)
< (dataset, model).

    >>> lookup("digits", "cnn")["train"]["epochs"]
    15
    >>> lookup("ucr/gunpoint", "fcn")["train"]["batch_size"]
    16
"""

from __future__ import annotations

import copy
from typing import Any

# The numbers are starting points for a laptop CPU (a minute or two per run), not tuned optima.
_PIXEL_TCN = {"train": {"epochs": 8, "batch_size": 64, "lr": 2e-3, "scheduler": "cosine"},
              "model": {"channels": 25, "num_levels": 8, "kernel_size": 7, "dropout": 0.05}}  # seq-mnist, pmnist
TABLE: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("*", "*"): {"train": {"epochs": 10}},
    # class folders of photos, chosen on validation with 2,000 photos at 96x96 for 3 epochs (no augmentation;
    # docs/datasets.md "Defaults for photo folders"): batch 64 with a constant lr 1e-3 kept a resnet near chance
    # (val 0.61); batch 16 with a one-cycle lr 3e-3 reached cnn 1.000 and resnet 0.825, 0.988 once the resnet
    # skips the stem's max-pool (stage 1 at 1/2 resolution), 0.994 / 0.975 / 0.950 (seeds 0 / 1 / 2) at batch 8,
    # and 1.000 at every seed once its blocks' last BatchNorm starts at 1 instead of 0 (zero_init_last=False)
    ("<image_folder>", "*"): {"train": {"batch_size": 16, "lr": 3e-3, "scheduler": "onecycle"}},
    ("<image_folder>", "resnet"): {"train": {"batch_size": 8}, "model": {"stem_pool": False, "zero_init_last": False}},
    # 1,797 8x8 digits: a small CNN passes 97% in a few seconds
    ("digits", "*"): {"train": {"epochs": 15, "batch_size": 64}},
    # as a sequence (8 rows of 8 pixels) the recurrent models need more passes over the small set
    ("digits", "rnn"): {"train": {"epochs": 30, "lr": 3e-3}},
    ("digits", "lstm"): {"train": {"epochs": 30, "lr": 3e-3}},
    ("digits", "gru"): {"train": {"epochs": 30, "lr": 3e-3}},
    # MNIST and Fashion-MNIST (54,000 28x28 training images; docs/datasets.md "Defaults for MNIST and
    # Fashion-MNIST"): one-cycle AdamW peaking at 3e-3, batch 128, 12 epochs; the cnn a third conv block
    # (32, 64, 128), a 256-wide hidden layer and dropout 0.3; the row-wise GRU bidirectional. One recipe,
    # checked on the val split of seed 0 (6,000 images), never test: val mnist cnn 0.993, fashion-mnist
    # cnn 0.936, gru 0.913. The Fashion-MNIST cnn then gained random erasing (p 0.5, nothing else) and 30
    # epochs: best val 0.9382 against 0.936 (seven other candidates, docs/datasets.md, did not beat 0.936);
    # against erasing + flips it won on the mean best val of seeds 0 and 1 (0.9413 against 0.9392)
    ("mnist", "*"): {"train": {"epochs": 12, "batch_size": 128, "lr": 3e-3, "scheduler": "onecycle"}},
    ("mnist", "cnn"): {"model": {"channels": (32, 64, 128), "hidden": 256, "dropout": 0.3}},
    ("fashion-mnist", "*"): {"train": {"epochs": 12, "batch_size": 128, "lr": 3e-3, "scheduler": "onecycle"}},
    ("fashion-mnist", "cnn"): {"model": {"channels": (32, 64, 128), "hidden": 256, "dropout": 0.3},
                               "train": {"epochs": 30, "augment": {
                                   "crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "flip": 0.0, "rotation": 0.0,
                                   "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "erase": 0.5}}},
    ("fashion-mnist", "gru"): {"model": {"hidden_size": 128, "bidirectional": True}},
    # the small resnet (1.2M parameters, full-resolution stem on 28x28): 20 epochs of the same one-cycle
    # recipe with random erasing (p 0.5) plus flips and a mild crop (area 0.8-1) — best val 0.9422 (epoch 20)
    # against 0.9420 (epoch 17) with erasing alone, seed 0, one thread each, ~125 s per epoch
    ("fashion-mnist", "resnet"): {"train": {"epochs": 20, "augment": {
        "crop_scale": (0.8, 1.0), "crop_ratio": (0.9, 1.1111), "flip": 0.5, "rotation": 0.0,
        "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "erase": 0.5}}},
    # sequential and permuted MNIST (784 pixels, one per step; docs/datasets.md "Sequential and permuted
    # MNIST"): the TCN of Bai, Kolter & Koltun 2018's seq-MNIST experiment as published (8 levels of 25
    # channels, kernel 7 — a 3,061-step receptive field —, dropout 0.05, Adam 2e-3, batch 64), for a CPU
    # budget of 8 epochs with a cosine decay (the paper: 20 epochs at a constant rate); ~7 min per epoch on
    # one core
    ("seq-mnist", "tcn"): _PIXEL_TCN,
    ("pmnist", "tcn"): _PIXEL_TCN,
    # conditional DCGAN on Fashion-MNIST (docs/generation.md): the DCGAN recipe (constant lr 2e-4, no weight
    # decay, Adam β1 0.5 from the model), not the classifiers' one-cycle 3e-3; one run, seed 0, val
    # class_accuracy 0.33 / 0.68 / 0.73 / 0.84 / 0.86 and fid 290 / 254 / 216 / 188 / 140 after epochs 1/3/5/10/15
    ("fashion-mnist", "dcgan"): {"train": {"epochs": 15, "lr": 2e-4, "weight_decay": 0.0, "scheduler": "none"}},
    # conditional VAE on Fashion-MNIST (docs/generation.md), chosen on val against nine other candidates (σ
    # 0.5/1/2, latent 8/16, wider, a class prior, temperatures; best val class_accuracy 0.792): sampling from
    # a Gaussian per class fitted to the posterior means (prior="fitted"), 20 epochs — val 0.840, fid 78.6
    ("fashion-mnist", "vae"): {"train": {"epochs": 20}, "model": {"prior": "fitted"}},
    # conditional VAE (docs/generation.md), chosen on val: 100 epochs, noise_std 0.3/0.5/0.7 → val
    # class_accuracy 0.82/0.97/1.0, fid 32.8/13.7/14.4; 200 epochs at 0.5 → 0.99, fid 8.6
    ("digits", "vae"): {"train": {"epochs": 200}},
    # conditional DCGAN: 200 epochs, no weight decay; lr 2e-4 vs 1e-3 → best val fid 40.1 vs 41.7
    ("digits", "dcgan"): {"train": {"epochs": 200, "lr": 2e-4, "weight_decay": 0.0}},
    # MNIST-1D (4,000 series of length 40): AdamW with a one-cycle schedule peaking at 1e-2, and for the
    # CNN wider, longer kernels; each chosen by mean validation accuracy over the val splits of seeds
    # 1-3 (CNN: (32, 64) k3 0.983, (64, 64, 64) k5 0.989, (64, 128, 128) k7-5-3 0.991), never on test
    ("mnist1d", "*"): {"train": {"epochs": 30, "batch_size": 64, "lr": 1e-2, "scheduler": "onecycle"}},
    ("mnist1d", "cnn"): {"model": {"channels": (64, 128, 128), "kernel_sizes": (7, 5, 3)}},
    ("mnist1d", "rnn"): {"model": {"hidden_size": 64, "num_layers": 2, "bidirectional": True}},
    ("mnist1d", "lstm"): {"model": {"hidden_size": 64, "num_layers": 2, "bidirectional": True}},
    ("mnist1d", "gru"): {"model": {"hidden_size": 64, "num_layers": 2, "bidirectional": True}},
    # UCR/UEA archive: Fawaz et al. 2019's recipe (Adam, lr 1e-3, batch 16, no weight decay), with 200
    # epochs and a cosine decay instead of their 1,500-2,000 on a GPU. The archive's training sets are
    # tiny (GunPoint: 50), so the 10% validation split is 2-27 series and its accuracy ties at 100%
    # within a few epochs; the final (annealed) weights are kept instead of the first perfect epoch.
    ("ucr/*", "*"): {"train": {"epochs": 200, "batch_size": 16, "lr": 1e-3, "optimizer": "adam",
                               "weight_decay": 0.0, "scheduler": "cosine", "select": "last"}},
    # a 4-level TCN sees 61 steps, less than most archive series: average over all steps instead
    ("ucr/*", "tcn"): {"model": {"pooling": "mean"}},
    # whole series are classified offline, so both directions are available; on JapaneseVowels a
    # bidirectional GRU's validation accuracy is 1.0 on seeds 0-2 (one-way: 0.93, mean pooling: 0.88).
    # Kept after a validation-only check on the val splits of seeds 0-2 (81 series; errors, mean final
    # val loss): this default 0, 0.022; hidden 64: 1, 0.029; max pooling 2, 0.022; 2 layers of 64 with
    # dropout 0.3: 2, 0.045; AdamW weight decay 1e-2: 0, 0.023 -- none better
    ("ucr/*", "lstm"): {"model": {"bidirectional": True}},
    ("ucr/*", "gru"): {"model": {"bidirectional": True}},
    ("ucr/*", "rnn"): {"model": {"bidirectional": True}},
    # JapaneseVowels: the validation split (27 series) ties at 100%, so the LSTM's settings were chosen by
    # 5-fold cross-validation on the archive's 270 training series (benchmarks/ucr_cv.py; the test split
    # is never read): held-out correct 2 layers + dropout 0.3: 262, hidden 256: 261, mean pooling: 260,
    # hidden 64: 260, 100 epochs: 256, this family default: 255, AdamW 1e-2: 254
    ("ucr/japanesevowels", "lstm"): {"model": {"num_layers": 2, "dropout": 0.3}},
    # forecasting (few, overlapping windows: 186 sunspots, 61 airline, 359 co2): many short epochs;
    # chosen on the validation period (benchmarks/forecast_table.py)
    # surnames (53 classes, 23k names): one layer overfits after ~5 epochs (val accuracy 0.797, macro-F1
    # 0.694, GRU 128 bi); two layers with dropout 0.3 and a cosine schedule keep improving to 0.816 / 0.715
    ("surnames", "*"): {"train": {"epochs": 12, "batch_size": 64, "lr": 3e-3, "scheduler": "cosine"}},
    ("surnames", "rnn"): {"model": {"num_layers": 2, "dropout": 0.3}},
    ("surnames", "lstm"): {"model": {"num_layers": 2, "dropout": 0.3}},
    ("surnames", "gru"): {"model": {"num_layers": 2, "dropout": 0.3}},
    # sentiment (27k tweets, words): bidirectional, max-pooled over words (val macro-F1 0.745 at epoch 3)
    ("sentiment", "*"): {"train": {"epochs": 5, "batch_size": 64, "lr": 2e-3},
                         "model": {"embedding_dim": 128}},
    ("sentiment", "rnn"): {"model": {"bidirectional": True, "pooling": "max"}},
    ("sentiment", "lstm"): {"model": {"bidirectional": True, "pooling": "max"}},
    ("sentiment", "gru"): {"model": {"bidirectional": True, "pooling": "max"}},
    ("sentiment", "tcn"): {"model": {"pooling": "mean"}},
    # pydoc (465k characters): a 512-unit LSTM over 128-character chunks, state carried between them
    ("pydoc", "*"): {"train": {"epochs": 15, "batch_size": 32, "lr": 3e-3, "scheduler": "cosine"},
                     "model": {"hidden_size": 512}},
    # text. dates → ISO (seq2seq): one epoch of Bahdanau-attention GRU reaches 0.997 validation
    # exact match (a 1,000-item val sample; Luong/LSTM 0.982), so a few epochs suffice
    ("dates", "seq2seq"): {"train": {"epochs": 3, "batch_size": 64, "lr": 3e-3, "grad_clip": 1.0},
                           "model": {"mode": "gru", "attention": "bahdanau", "hidden_size": 128, "embedding_dim": 32}},
    # bible-en-es (24,644 verse pairs, 2,000 BPE subwords per language; docs/text.md "Translation"): a small
    # Luong-attention GRU that fits ~25 minutes on 2 shared cores; one validation run, not a sweep
    ("bible-en-es", "seq2seq"): {"train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "grad_clip": 1.0,
                                           "scheduler": "cosine"},
                                 "model": {"mode": "gru", "attention": "luong", "hidden_size": 128,
                                           "embedding_dim": 128, "max_length": 160}},
    # bible-en (3.17M training characters, docs/text.md "Language model on real text"): chosen on val bits/char,
    # seed 0, 1 thread. The shared lstm defaults (hidden 128, lr 1e-3, no schedule, 10 epochs) reach val 1.775,
    # worse than the Kneser-Ney 5-gram's 1.688; hidden 512 with a cosine schedule at lr 2e-3 reaches 1.838 /
    # 1.641 / 1.553 / 1.506 / 1.475 / 1.452 / 1.438 / 1.435 after epochs 1-8 (369 s per epoch)
    ("bible-en", "lstm"): {"train": {"epochs": 8, "lr": 2e-3, "scheduler": "cosine"}, "model": {"hidden_size": 512}},
    # image captioning (10k scenes): a 15-epoch cosine run of the default captioner (GRU 128, Bahdanau
    # attention over the 4x4 feature map) reached 0.922 / 0.967 / 0.998 validation exact match after
    # epochs 2 / 3 / 4, so 6 epochs leave room to spare (this recipe: 1.000 on val, see docs/vision.md)
    ("scenes-captions", "captioner"): {"train": {"epochs": 6, "batch_size": 64, "lr": 3e-3, "scheduler": "cosine",
                                                 "grad_clip": 1.0}},
    # CTC transcription (docs/transcribe.md): one-cycle AdamW; the CTC loss sits on the all-blank plateau
    # for the first ~200 steps, then falls quickly
    ("digit-strings", "crnn-ctc"): {"train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "scheduler": "onecycle"},
                                    "model": {"channels": (32, 64, 96), "hidden_size": 128}},
    # 40 mel bands: two conv blocks, time halved once (a 40 ms tone keeps 2 frames)
    ("dtmf", "crnn-ctc"): {"train": {"epochs": 8, "batch_size": 32, "lr": 3e-3, "scheduler": "onecycle"},
                           "model": {"channels": (16, 32), "pools": ((2, 2), (2, 1)), "hidden_size": 64}},
    # moving digits (12,000 clips of 10 or 16 20x20 frames; docs/vision.md#video). Chosen on the val split
    # of seed 0 (500 clips): the direction is learned within 2 epochs, the digit limits the score; a
    # flattened (16, 32) map reached 0.926-0.934 digit accuracy with 4,000 clips, a third conv block
    # with the global max beside the flattened map ("both"), dropout 0.3 and mean pooling 0.932, and
    # the same on 12,000 clips 0.960 after 6 epochs
    ("moving-digits", "*"): {"train": {"epochs": 6, "batch_size": 64, "lr": 3e-3, "scheduler": "cosine"}},
    ("moving-digits", "crnn"): {"model": {"channels": (16, 32, 64), "spatial": "both", "dropout": 0.3,
                                          "pooling": "mean"}},
    ("moving-digits", "frame-cnn"): {"model": {"channels": (16, 32, 64)}},
    ("moving-digits-frames", "*"): {"train": {"epochs": 4, "batch_size": 64, "lr": 3e-3, "scheduler": "cosine"}},
    ("moving-digits-frames", "crnn"): {"model": {"channels": (16, 32, 64), "spatial": "both", "dropout": 0.3}},
    ("sunspots", "*"): {"train": {"epochs": 100, "batch_size": 32, "lr": 1e-3}},
    ("sunspots", "lstm"): {"model": {"hidden_size": 128}},
    ("sunspots", "gru"): {"model": {"hidden_size": 128}},
    ("airline", "*"): {"train": {"epochs": 300, "batch_size": 32, "lr": 3e-3}},
    ("airline", "lstm"): {"model": {"hidden_size": 64}},
    ("airline", "gru"): {"model": {"hidden_size": 64}},
    ("co2", "*"): {"train": {"epochs": 100, "batch_size": 32, "lr": 1e-3}},
    # shapes-seg (6,000 64x64 scenes): small batches give many steps per epoch; a 4-stage U-Net of
    # (16, 32, 64, 128) sees 60+ pixels, more than the largest shape (see docs/vision.md for the numbers)
    ("shapes-seg", "*"): {"train": {"epochs": 8, "batch_size": 8, "lr": 2e-3, "scheduler": "cosine"}},
    ("shapes-seg", "unet"): {"model": {"channels": (16, 32, 64, 128)}},
    ("shapes-seg", "fcn"): {"model": {"channels": (16, 32, 64, 128)}},
    ("shapes-seg", "fcn8s"): {"model": {"channels": (16, 32, 64, 128)}},
    # shapes-detect (64x64 scenes, validation writers held out): centernet's own (32, 64, 128) chosen
    # on val mAP@0.5 over (16, 32, 64) and (16, 32, 64, 128) on 6,000 scenes: 0.916 vs 0.899 / 0.893 at
    # 12 epochs; then 12,000 training scenes (the dataset's default now): 0.954; see docs/detection.md
    ("shapes-detect", "*"): {"train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "scheduler": "cosine"}},
}

SECTIONS = ("train", "model")


def lookup(dataset: str, model: str, table: dict | None = None, *, reader: str | None = None) -> dict[str, dict[str, Any]]:
    """The merged defaults for training `model` on `dataset`.

    Args:
        dataset: a built-in dataset name; a path (user data) matches the "*" entries and its reader's.
        model: a registered model name.
        table: the table to read. Default: `TABLE`.
        reader: for user files, the reader that loaded them (`info.preprocessing["source"]`, e.g.
            "image_folder"): entries "<image_folder>" apply. Default: None.
    Returns:
        `{"train": {...}, "model": {...}}`, a fresh copy the caller may change.
    """
    table = TABLE if table is None else table
    merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    dataset = dataset.lower()
    family = f"<{reader}>" if reader else family_pattern(dataset)
    keys = [("*", "*"), (family, "*"), (dataset, "*"), ("*", model), (family, model), (dataset, model)]
    for key in keys:
        if key[0] is None:
            continue
        for section, values in table.get(key, {}).items():
            merged[section].update(copy.deepcopy(values))
    return merged


def family_pattern(dataset: str) -> str | None:
    """The family pattern a dataset name belongs to: "ucr/*" for "ucr/gunpoint", None for "digits".

    Example:
        >>> family_pattern("ucr/GunPoint"), family_pattern("digits")
        ('ucr/*', None)
    """
    head, sep, rest = dataset.lower().partition("/")
    return f"{head}/*" if sep and head and rest and "/" not in rest else None
