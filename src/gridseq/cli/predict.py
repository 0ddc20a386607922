"""`gridseq predict RUN_DIR INPUT... | --split S`: predictions of a trained run on new inputs or on one
of its own splits, printed one line per item or as JSON records.

    gridseq predict runs/digits-cnn-s0 some.png --top-k 3
    gridseq predict runs/surnames-gru-s0 Nakamura Schmidt "O'Brien"
    gridseq predict runs/dates-seq2seq-s0 "3 de marzo de 1999" --beam 4
    gridseq predict runs/shapes-seg-fcn-s0 --split test --out masks

Inputs are prepared exactly like the training data (the run's recorded preprocessing). Class-per-input
and per-step runs print labels and top-k probabilities; text runs, captions and transcripts go through
`gridseq.predict.Predictor` (as the server does); masks and boxes are drawn with --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gridseq.cli.common import EXIT_OK, console, positive_int, print_json
from gridseq.errors import ConfigError, DataError


def register(sub, parents) -> None:
    """Add the `predict` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("predict", parents=parents, help="predict labels with a trained run",
                       description="Predict the label and class probabilities of each input: image files, or .npz / .csv files "
                                   "of sequences (one prediction per row), prepared exactly like the training data.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="image files, .npz or .csv files; for text runs, the texts themselves")
    p.add_argument("--split", choices=("test", "val", "train"), help="predict on the run's own dataset split instead of INPUTs")
    p.add_argument("--invert", action="store_true", help="images: use 1 - pixel (dark ink on light paper, for a model trained on light on dark)")
    p.add_argument("--top-k", type=positive_int, default=3, metavar="K", help="how many classes to list per item (default: 3)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--beam", type=positive_int, default=1, metavar="N", help="seq2seq and caption runs: beam width (default: 1, greedy)")
    p.add_argument("--json", action="store_true", help="print JSON: one record per item")
    p.add_argument("--out", metavar="PATH", help="segmentation runs: write the colour mask to PATH (a .png for one input, "
                                                 "else a folder) and an overlay beside it (<name>_overlay.png); detection runs: the image "
                                                 "with its boxes drawn (PATH.png for one input, else PATH/<name>_boxes.png)")
    p.set_defaults(handler=cmd_predict)


def cmd_predict(args) -> int:
    from gridseq import datasets
    from gridseq.runs import Run

    if bool(args.inputs) == bool(args.split):
        raise ConfigError("predict needs INPUT files or --split (not both): e.g. `gridseq predict RUN_DIR image.png` "
                          "or `gridseq predict RUN_DIR --split test`.")
    run = Run.open(args.run_dir)
    model = run.model
    if getattr(model, "serves_task", None) == "generate-image":
        raise ConfigError(f"{args.run_dir} is an image generator; draw images with `gridseq sample {args.run_dir} --n 64 --out grid.png`.")
    info = run.info
    if info.task == "forecast":
        raise ConfigError(f"{args.run_dir} is a forecasting run; use `gridseq forecast {args.run_dir}` to forecast with it.")
    if info.task == "transcribe":
        return predict_transcripts(args, run)
    if info.kind == "tokens":
        if args.split:
            split = run.reload_data().splits()[args.split]
            return predict_text(args, model, info, list(split.texts), split.targets or split.y.tolist())
        return predict_text(args, model, info, list(args.inputs), None)
    if info.task == "segment":
        return predict_masks(args, run)
    if info.task == "detect":
        return predict_boxes(args, run)
    if args.out:
        raise ConfigError(f"--out writes segmentation masks; {args.run_dir} is a {info.task} run.")
    if info.task == "caption":
        return predict_captions(args, run)
    if args.split:
        split = run.reload_data().splits()[args.split]
        # one batch at a time: a streamed split is decoded as it is predicted
        batches = ((args.split, split.batch(slice(i, i + args.batch_size))) for i in range(0, len(split), args.batch_size))
        targets = split.y.tolist()
    else:
        batches = []
        for path in args.inputs:
            if not Path(path).exists():
                raise DataError(f"input {path} does not exist; pass image files, or .npz / .csv files of sequences.")
            if info.kind == "video":  # a .npy clip or a folder of frames
                from gridseq.data.readers.video import prepare_clips

                batches.append((path, prepare_clips([path], info.preprocessing)))
                continue
            batches.append((path, datasets.prepare_inputs([path], info, invert=args.invert)))
        targets = None
    task = run.task
    records = []
    with torch.no_grad():
        for name, batch in batches:
            labels, probs = task.predict(task.forward(model, batch))
            # a split or a multi-row file names each item by its index: test[17], series.csv[3]
            first = len(records) if args.split else 0
            names = [f"{name}[{first + i}]" for i in range(len(batch))] if args.split or len(batch) > 1 else [name]
            records.extend(_records(names, labels, probs, info.class_names, args.top_k, batch.lengths))
    if targets is not None:
        for record, target in zip(records, targets):
            if isinstance(target, list):  # per-step targets; -100 marks an unlabelled step
                record["target"] = [info.class_names[t] for t in target if t >= 0]
            else:
                record["target"] = info.class_names[target]
    if args.json:
        print_json(records)
    else:
        _print_predictions(records)
    return EXIT_OK


def _records(names: list[str], labels, probs, class_names, top_k: int, lengths=None) -> list[dict]:
    """One JSON-able record per item: its name, predicted class name and top-k class probabilities; for a
    per-step (tag) run, the class name of every step (cut to the item's length) instead."""
    if labels.dim() == 2:
        steps = lengths.tolist() if lengths is not None else [labels.shape[1]] * len(labels)
        return [{"input": name, "labels": [class_names[c] for c in row[:n]]}
                for name, row, n in zip(names, labels.tolist(), steps)]
    top_p, top_i = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [
        {"input": name, "label": class_names[label], "probabilities": {class_names[i]: round(p, 6) for p, i in zip(p_row, i_row)}}
        for name, label, p_row, i_row in zip(names, labels.tolist(), top_p.tolist(), top_i.tolist())
    ]


def _print_predictions(records: list[dict]) -> None:
    out = console()
    for r in records:
        if "labels" in r:  # one class per step
            target = f"  (true: {' '.join(r['target'])})" if "target" in r else ""
            out.print(f"{r['input']}\t{' '.join(r['labels'])}{target}", highlight=False, markup=False, soft_wrap=True)
            continue
        probs = ", ".join(f"{c} {p:.3f}" for c, p in r["probabilities"].items())
        target = f"  (true: {r['target']})" if "target" in r else ""
        out.print(f"{r['input']}\t{r['label']}\t[{probs}]{target}", highlight=False, markup=False, soft_wrap=True)


def predict_text(args: argparse.Namespace, model, info, texts: list[str], targets: list | None) -> int:
    """Predictions for `texts` with a text run: class probabilities, or decoded target sequences
    (through `gridseq.predict.Predictor`, as the server does)."""
    from gridseq.predict import Predictor

    if info.task == "lm":
        raise ConfigError(f"{args.run_dir} is a language model; sample from it with `gridseq generate {args.run_dir} --prompt TEXT`.")
    predictor = Predictor(model, info)
    options = {"beam": args.beam} if info.task == "seq2seq" else {"top_k": args.top_k}
    records = []
    for start in range(0, len(texts), args.batch_size):
        chunk = texts[start : start + args.batch_size]
        out = predictor.predict(chunk, **options)
        if info.task == "seq2seq":
            records.extend({"input": t, "output": o} for t, o in zip(chunk, out["predictions"]))
        else:
            records.extend({"input": t, "label": label, "probabilities": p}
                           for t, label, p in zip(chunk, out["predictions"], out["probabilities"]))
    for record, target in zip(records, targets or []):
        record["target"] = target if isinstance(target, str) else info.class_names[target]
    if args.json:
        print_json(records)
    elif info.task == "seq2seq":
        out = console()
        for r in records:
            target = f"  (true: {r['target']})" if "target" in r else ""
            out.print(f"{r['input']}\t{r['output']}{target}", highlight=False, markup=False, soft_wrap=True)
    else:
        _print_predictions(records)
    return EXIT_OK


def _image_items(args, run) -> list[tuple]:
    """(name, prepared image (1, C, H, W), target or None) for each INPUT file, or for each item of --split."""
    from gridseq.data.readers.mask_folder import prepare_segment_image

    if args.split:
        split = run.reload_data().splits()[args.split]
        items = (split.batch(slice(i, i + 1)) for i in range(len(split)))  # streamed masks come with their images
        return [(f"{args.split}[{i}]", b.x, b.y[0]) for i, b in enumerate(items)]
    return [(path, prepare_segment_image(path, run.info, invert=args.invert), None) for path in args.inputs]


def predict_captions(args, run) -> int:
    """`gridseq predict` on a captioning run: one caption per image (or per item of --split), decoded
    greedily or with --beam, through the server's Predictor."""
    from gridseq import datasets
    from gridseq.predict import Predictor

    model, info = run.model, run.info
    options = {"beam": args.beam}
    records = []
    if args.split:
        predictor = Predictor(model, info)
        split = run.reload_data().splits()[args.split]
        for start in range(0, len(split), args.batch_size):
            batch = split.batch(slice(start, start + args.batch_size))
            captions = predictor.decode(predictor.forward(batch, options), batch, options)["predictions"]
            truths = (split.targets[start : start + len(batch)] if split.targets
                      else [predictor.target_vocab.decode(r) for r in batch.y.tolist()])
            records.extend({"input": f"{args.split}[{start + i}]", "caption": c, "target": t}
                           for i, (c, t) in enumerate(zip(captions, truths)))
    else:
        predictor = Predictor(model, info)
        for path in args.inputs:
            if not Path(path).exists():
                raise DataError(f"input {path} does not exist; pass image files (.png, .jpg, .bmp, .gif).")
            batch = datasets.prepare_inputs([path], info, invert=args.invert)
            caption = predictor.decode(predictor.forward(batch, options), batch, options)["predictions"][0]
            records.append({"input": path, "caption": caption})
    if args.json:
        print_json(records)
        return EXIT_OK
    out = console()
    for r in records:
        target = f"  (true: {r['target']})" if "target" in r else ""
        out.print(f"{r['input']}\t{r['caption']}{target}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def predict_masks(args, run) -> int:
    """`gridseq predict` for segmentation runs: per image its size and the share of each predicted class
    (and pixel accuracy for --split); with --out, a colour mask and an overlay PNG per image."""
    from gridseq.data.contract import Batch
    from gridseq.data.readers.mask_folder import colorize, mask_paths, overlay, raw_image, write_png

    model, info, task = run.model, run.info, run.task
    items = _image_items(args, run)
    outs = mask_paths(args.out, [name for name, _, _ in items]) if args.out else [None] * len(items)
    palette = info.preprocessing.get("palette")
    records = []
    with torch.no_grad():
        for (name, x, target), out in zip(items, outs):
            mask = task.predict(task.forward(model, Batch(x)))[0][0]  # (H, W)
            counts = torch.bincount(mask.flatten(), minlength=len(info.class_names)).tolist()
            record = {"input": name, "size": list(mask.shape),
                      "classes": {c: round(n / mask.numel(), 4) for c, n in zip(info.class_names, counts) if n}}
            if target is not None:
                labelled = target != -100
                record["pixel_accuracy"] = round(float((mask == target)[labelled].float().mean()), 4)
            if out is not None:
                write_png(out[0], colorize(mask.numpy(), palette))
                write_png(out[1], overlay(raw_image(x[0], info.preprocessing), mask.numpy(), palette))
                record.update(mask=str(out[0]), overlay=str(out[1]))
            records.append(record)
    if args.json:
        print_json(records)
        return EXIT_OK
    for r in records:
        shares = ", ".join(f"{c} {p:.1%}" for c, p in r["classes"].items())
        extra = (f"  pixel accuracy {r['pixel_accuracy']:.3f}" if "pixel_accuracy" in r else "") + (f"  -> {r['mask']}" if "mask" in r else "")
        console().print(f"{r['input']}\t{r['size'][0]}x{r['size'][1]}\t[{shares}]{extra}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def predict_boxes(args, run) -> int:
    """`gridseq predict` for detection runs: per image its boxes (class, score); with --out, a PNG with
    the boxes drawn (OUT itself for one input ending in .png, else OUT/<name>_boxes.png)."""
    from gridseq.data.contract import Batch
    from gridseq.data.readers.mask_folder import output_paths, raw_image, write_png
    from gridseq.tasks.detect import box_records, draw_boxes

    model, info, task = run.model, run.info, run.task
    items = _image_items(args, run)
    outs = output_paths(args.out, [name for name, _, _ in items], "boxes") if args.out else [None] * len(items)
    records = []
    with torch.no_grad():
        for (name, x, target), path in zip(items, outs):
            found = box_records(task.predict(task.forward(model, Batch(x)))[0], info.class_names)
            record = {"input": name, "size": list(x.shape[2:]), "boxes": found}
            if target is not None:
                real = target[target[:, 4] >= 0]
                record["target"] = [{"box": [round(float(v), 1) for v in r[:4]], "class": info.class_names[int(r[4])]} for r in real]
            if path is not None:
                rgb = (raw_image(x[0], info.preprocessing).transpose(1, 2, 0) * 255).round().astype("uint8")
                if rgb.shape[2] == 1:
                    rgb = rgb.repeat(3, axis=2)
                write_png(path, draw_boxes(rgb, found))
                record["out"] = str(path)
            records.append(record)
    if args.json:
        print_json(records)
        return EXIT_OK
    for r in records:
        found = ", ".join(f"{b['class']} {b['score']:.2f} [{', '.join(f'{v:g}' for v in b['box'])}]" for b in r["boxes"]) or "nothing"
        extra = f"  -> {r['out']}" if "out" in r else ""
        console().print(f"{r['input']}\t{r['size'][0]}x{r['size'][1]}\t{found}{extra}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def predict_transcripts(args, run) -> int:
    """`gridseq predict` on a transcription (CTC) run: image/WAV INPUT files, or a split's items, through
    the Predictor (greedy decoding, or prefix beam search with --beam)."""
    from gridseq.data.contract import Batch
    from gridseq.predict import Predictor

    records = []
    if args.split:
        split, predictor = run.reload_data().splits()[args.split], Predictor(run.model, run.info)
        for start in range(0, len(split), args.batch_size):
            part = split.batch(slice(start, start + args.batch_size))
            batch = Batch(part.x, None, part.lengths)
            out = predictor.decode(predictor.forward(batch), batch, {"beam": args.beam})["predictions"]
            records.extend({"input": f"{args.split}[{start + i}]", "transcript": t, "target": split.targets[start + i]}
                           for i, t in enumerate(out))
    else:
        from gridseq.data.readers.transcripts import prepare_transcribe

        predictor = Predictor(run.model, run.info)
        options = predictor.check_options({"beam": args.beam})
        for path in args.inputs:
            batch = prepare_transcribe([path], predictor.info, files=True)
            out = predictor.decode(predictor.forward(batch, options), batch, options)["predictions"]
            records.append({"input": path, "transcript": out[0]})
    if args.json:
        print_json(records)
    else:
        out = console()
        for r in records:
            target = f"  (true: {r['target']})" if "target" in r else ""
            out.print(f"{r['input']}\t{r['transcript']}{target}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK
