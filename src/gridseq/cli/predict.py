"""`gridseq predict RUN_DIR INPUT... | --split S`: predictions of a trained run on new inputs or on one
of its own splits, printed one line per item or as JSON records.

    gridseq predict runs/digits-cnn-s0 some.png --top-k 3
    gridseq predict runs/surnames-gru-s0 Nakamura Schmidt "O'Brien"
    gridseq predict runs/dates-seq2seq-s0 "3 de marzo de 1999" --beam 4
    gridseq predict runs/shapes-seg-fcn-s0 --split test --out masks

Inputs are prepared exactly like the training data (the run's recorded preprocessing) and predicted
through `gridseq.predict.Predictor`, as the server does; the task says how (`Task.read_file` for an
INPUT file, `prepare` for texts, `decode` for the records, `record_key` for their field: label, labels,
output, caption, transcript). Runs whose task predicts image by image (`Task.drawn`: segmentation masks,
detection boxes) go through their drawer, which --out writes as PNGs; runs another command serves
(`Task.elsewhere`: language models, forecasters, image generators) get a one-line pointer to it.
"""

from __future__ import annotations

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
    from gridseq.predict import Predictor
    from gridseq.runs import Run

    if bool(args.inputs) == bool(args.split):
        raise ConfigError("predict needs INPUT files or --split (not both): e.g. `gridseq predict RUN_DIR image.png` "
                          "or `gridseq predict RUN_DIR --split test`.")
    run = Run.open(args.run_dir)
    task = run.task
    elsewhere = task.elsewhere(args.run_dir)
    if elsewhere:  # a language model, a forecaster, an image generator: another command serves it
        raise ConfigError(elsewhere)
    if task.drawn:  # any-size images, one at a time; --out draws the result
        return DRAWERS[task.drawn](args, run)
    if args.out:
        raise ConfigError(f"--out writes segmentation masks; {args.run_dir} is a {run.info.task} run.")
    predictor = Predictor(run.model, run.info)
    options = predictor.check_options({k: v for k, v in (("top_k", args.top_k), ("beam", args.beam), ("invert", args.invert))
                                       if k in predictor.options})
    records = []
    for names, batch, targets in _batches(args, run, predictor):
        out = predictor.decode(predictor.forward(batch, options), batch, options)
        for i, name in enumerate(names):
            record = {"input": name, task.record_key: out["predictions"][i]}
            if "probabilities" in out and task.record_key == "label":  # one class per item: its top-k
                record["probabilities"] = out["probabilities"][i]
            if targets is not None:
                record["target"] = targets[i]
            records.append(record)
    if args.json:
        print_json(records)
    else:
        _print_records(records, task.record_key)
    return EXIT_OK


def _batches(args, run, predictor):
    """(item names, prepared Batch, target labels or None) for INPUTs, or for --split batch by batch (a
    streamed split is decoded as it is predicted)."""
    from gridseq.data.contract import Batch

    info = run.info
    if args.split:
        split = run.reload_data().splits()[args.split]
        texts = split.texts if isinstance(split.texts, list) else None
        for start in range(0, len(split), args.batch_size):
            part = split.batch(slice(start, start + args.batch_size))
            rows = range(start, start + len(part))
            # a text split names each item by its text, others by their index: test[17]
            names = [texts[i] for i in rows] if texts else [f"{args.split}[{i}]" for i in rows]
            yield names, Batch(part.x, None, part.lengths), [_target(split, part, i - start, i, info, predictor) for i in rows]
        return
    if info.kind == "tokens":  # the INPUTs are the texts themselves
        for start in range(0, len(args.inputs), args.batch_size):
            texts = list(args.inputs[start : start + args.batch_size])
            yield texts, predictor.prepare(texts), None
        return
    for path in args.inputs:
        if not Path(path).exists():
            raise DataError(f"input {path} does not exist; pass image files, or .npz / .csv files of sequences.")
        batch = run.task.read_file(path, invert=args.invert)
        # a multi-row file names each item by its index: series.csv[3]
        yield ([f"{path}[{i}]" for i in range(len(batch))] if len(batch) > 1 else [path]), batch, None


def _target(split, part, j: int, i: int, info, predictor):
    """The readable target of item `i` of `split` (row `j` of its batch `part`)."""
    if split.targets is not None:  # the raw target strings (text datasets, transcripts, captions)
        return split.targets[i]
    y = part.y[j]
    if y.dim() == 0:
        return info.class_names[int(y)]
    if predictor.target_vocab is not None:  # word ids of a caption
        return predictor.target_vocab.decode(y.tolist())
    return [info.class_names[t] for t in y.tolist() if t >= 0]  # per-step targets; -100 marks an unlabelled step


def _print_records(records: list[dict], key: str) -> None:
    """One line per record: input, prediction (steps joined by spaces), top-k probabilities, the target."""
    out = console()
    for r in records:
        value, target = r[key], r.get("target")
        line = f"{r['input']}\t{' '.join(value) if isinstance(value, list) else value}"
        if "probabilities" in r:
            line += "\t[" + ", ".join(f"{c} {p:.3f}" for c, p in r["probabilities"].items()) + "]"
        if target is not None:
            line += f"  (true: {' '.join(target) if isinstance(target, list) else target})"
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _image_items(args, run) -> list[tuple]:
    """(name, prepared image (1, C, H, W), target or None) for each INPUT file, or for each item of --split."""
    from gridseq.data.readers.mask_folder import prepare_segment_image

    if args.split:
        split = run.reload_data().splits()[args.split]
        items = (split.batch(slice(i, i + 1)) for i in range(len(split)))  # streamed masks come with their images
        return [(f"{args.split}[{i}]", b.x, b.y[0]) for i, b in enumerate(items)]
    return [(path, prepare_segment_image(path, run.info, invert=args.invert), None) for path in args.inputs]


def predict_masks(args, run) -> int:
    """`gridseq predict` for segmentation runs: per image its size and the share of each predicted class
    (and pixel accuracy for --split); with --out, a colour mask and an overlay PNG per image."""
    from gridseq.data.contract import Batch
    from gridseq.data.readers.mask_folder import (
        colorize,
        mask_paths,
        overlay,
        raw_image,
        write_png,
    )

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


DRAWERS = {"masks": predict_masks, "boxes": predict_boxes}  # Task.drawn -> the handler that draws it
