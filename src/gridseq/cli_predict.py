"""`gridseq predict` for the task kinds whose output is not one class per input: captions, segmentation
masks, detected boxes and transcripts (the class-per-input and text paths stay in `gridseq.cli_run`)."""

from __future__ import annotations

from pathlib import Path

import torch

from gridseq.cli import EXIT_OK, console, print_json
from gridseq.cli_run import _reload_data, _run_info
from gridseq.errors import DataError


def _image_items(args, config: dict, info) -> list[tuple]:
    """(name, prepared image (1, C, H, W), target or None) for each INPUT file, or for each item of --split."""
    from gridseq.data.readers.mask_folder import prepare_segment_image

    if args.split:
        split = _reload_data(config, args.run_dir)[0].splits()[args.split]
        items = (split.batch(slice(i, i + 1)) for i in range(len(split)))  # streamed masks come with their images
        return [(f"{args.split}[{i}]", b.x, b.y[0]) for i, b in enumerate(items)]
    return [(path, prepare_segment_image(path, info, invert=args.invert), None) for path in args.inputs]


def predict_captions(args, model, config: dict) -> int:
    """`gridseq predict` on a captioning run: one caption per image (or per item of --split), decoded
    greedily or with --beam, through the server's Predictor."""
    from gridseq import datasets
    from gridseq.predict import Predictor

    info = _run_info(config, args.run_dir)
    options = {"beam": args.beam}
    records = []
    if args.split:
        data, info = _reload_data(config, args.run_dir)
        predictor = Predictor(model, info)
        split = data.splits()[args.split]
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


def predict_masks(args, model, config) -> int:
    """`gridseq predict` for segmentation runs: per image its size and the share of each predicted class
    (and pixel accuracy for --split); with --out, a colour mask and an overlay PNG per image."""
    from gridseq import tasks
    from gridseq.data.contract import Batch
    from gridseq.data.readers.mask_folder import colorize, mask_paths, overlay, raw_image, write_png

    info = _run_info(config, args.run_dir)
    task = tasks.for_data(info, model)
    items = _image_items(args, config, info)
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


def predict_boxes(args, model, config) -> int:
    """`gridseq predict` for detection runs: per image its boxes (class, score); with --out, a PNG with
    the boxes drawn (OUT itself for one input ending in .png, else OUT/<name>_boxes.png)."""
    from gridseq import tasks
    from gridseq.data.contract import Batch
    from gridseq.data.readers.mask_folder import output_paths, raw_image, write_png
    from gridseq.tasks.detect import box_records, draw_boxes

    info = _run_info(config, args.run_dir)
    task = tasks.for_data(info, model)
    items = _image_items(args, config, info)
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


def predict_transcripts(args, model, config: dict) -> int:
    """`gridseq predict` on a transcription (CTC) run: image/WAV INPUT files, or a split's items, through
    the Predictor (greedy decoding, or prefix beam search with --beam)."""
    from gridseq.data.contract import Batch
    from gridseq.predict import Predictor

    records = []
    if args.split:
        data, info = _reload_data(config, args.run_dir)
        split, predictor = data.splits()[args.split], Predictor(model, info)
        for start in range(0, len(split), args.batch_size):
            part = split.batch(slice(start, start + args.batch_size))
            batch = Batch(part.x, None, part.lengths)
            out = predictor.decode(predictor.forward(batch), batch, {"beam": args.beam})["predictions"]
            records.extend({"input": f"{args.split}[{start + i}]", "transcript": t, "target": split.targets[start + i]}
                           for i, t in enumerate(out))
    else:
        from gridseq.data.readers.transcripts import prepare_transcribe

        predictor = Predictor(model, _run_info(config, args.run_dir))
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
