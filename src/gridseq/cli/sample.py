"""`gridseq sample RUN_DIR`: draw images from a trained generator (a `generate-image` run: vae, dcgan).

    gridseq sample runs/digits-vae-s0 --n 64 --out grid.png            # columns cycle through the classes
    gridseq sample runs/digits-vae-s0 --n 16 --class 3 --out threes.png
    gridseq sample runs/digits-dcgan-s0 --n 64 --seed 7 --out gan.png

The samples are un-normalised with the run's recorded preprocessing and tiled into one PNG grid
(`--scale` pixels per image pixel). See docs/generation.md.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from gridseq.cli.common import EXIT_OK, console, positive_float, positive_int, print_json
from gridseq.models.traits import traits


def register(sub, parents) -> None:
    """Add the `sample` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser(
        "sample", parents=parents, help="draw images from a trained generator (vae, dcgan) into a PNG grid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sample N images from a generate-image run and write them as one PNG grid. A class-conditional "
                    "model draws the --class asked for, or without --class cycles through the classes (one column each).",
        epilog="Example: gridseq sample runs/digits-vae-s0 --n 64 --class 3 --out grid.png")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n", type=positive_int, default=64, metavar="N", help="how many images (default: 64)")
    p.add_argument("--class", dest="class_", metavar="K",
                   help="the class to draw, by index or name (conditional models; default: cycle through all)")
    p.add_argument("--seed", type=int, default=0, help="seeds the latent draws (default: 0)")
    p.add_argument("--temperature", type=positive_float, metavar="T",
                   help="vae only: the std of the latent draws, z ~ N(0, T²·I) (default: the model's, 1 unless set)")
    p.add_argument("--scale", type=positive_int, default=4, metavar="S", help="PNG pixels per image pixel (default: 4)")
    p.add_argument("--out", metavar="PNG", default="samples.png", help="where to write the grid (default: samples.png)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(handler=cmd_sample)


def sample_images(run_dir, n: int, class_: str | int | None = None, *, seed: int = 0,
                  temperature: float | None = None):
    """`n` images from the generator in `run_dir`, as (n, H, W, C) floats in the data's pixel range
    (un-normalised), and the class of each (None for an unconditional model). `temperature`: the
    latent std of a vae (None: the model's own).

    Raises:
        ConfigError: the run is not a generator, `class_` is unknown or given to an unconditional model,
            or a temperature is given to a generator that has none.
    """
    import torch

    from gridseq.errors import ConfigError
    from gridseq.runs import Run

    run = Run.open(run_dir)
    config, model = run.config, run.model
    if not traits(model).samples or run.task.generates != "images":
        raise ConfigError(f"{run_dir} holds a {config['model']['name']!r} model, not an image generator; "
                          f"`gridseq sample` needs a run trained with --model vae or --model dcgan.")
    info = config.get("data", {}).get("info", {})
    k = model.config.num_classes
    names = [str(c) for c in info.get("class_names", [])] or [str(i) for i in range(k)]
    if class_ is not None:
        if k == 0:
            raise ConfigError(f"{run_dir} holds an unconditional generator; it cannot draw a --class. Drop --class.")
        text = str(class_)
        index = names.index(text) if text in names else int(text) if text.lstrip("-").isdigit() else -1
        if not 0 <= index < k:
            raise ConfigError(f"--class must be a class index 0..{k - 1} or a name ({', '.join(names[:10])}), got {text!r}.")
        labels = torch.full((n,), index, dtype=torch.int64)
    else:
        labels = torch.arange(n) % k if k else None
    extra = {}
    if temperature is not None:
        if not hasattr(model.config, "temperature"):
            raise ConfigError(f"{run_dir} holds a {config['model']['name']!r} generator, which has no sampling "
                              f"temperature (only vae has one); drop --temperature.")
        extra["temperature"] = temperature
    generator = torch.Generator().manual_seed(seed)
    images = model.sample(n, labels, generator=generator, **extra).float()  # (n, C, H, W), normalised
    norm = info.get("preprocessing", {}).get("normalize")
    if norm:
        mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(norm["std"], dtype=torch.float32).view(1, -1, 1, 1)
        images = images * std + mean
    return images.permute(0, 2, 3, 1).numpy(), None if labels is None else labels.tolist()


def grid_png(images, path, *, columns: int, scale: int = 4, pad: int = 1) -> Path:
    """Tile (n, H, W, C) images in [0, 1] (clipped) into a PNG grid with `columns` columns, written atomically."""
    import numpy as np
    from PIL import Image

    from gridseq._atomic import atomic_write

    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 0.5, dtype=np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = image
    pixels = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    pixels = pixels.repeat(scale, 0).repeat(scale, 1)
    picture = Image.fromarray(pixels[..., 0] if c == 1 else pixels[..., :3])
    return atomic_write(Path(path), lambda tmp: picture.save(tmp, format="PNG"))


def cmd_sample(args: argparse.Namespace) -> int:
    images, labels = sample_images(args.run_dir, args.n, args.class_, seed=args.seed, temperature=args.temperature)
    k = len(set(labels)) if labels is not None and args.class_ is None else 0
    columns = k if k > 1 else math.ceil(math.sqrt(args.n))
    out = grid_png(images, args.out, columns=columns, scale=args.scale)
    if args.json:
        print_json({"out": str(out), "n": args.n, "classes": labels})
        return EXIT_OK
    what = f"class {args.class_}" if args.class_ is not None else ("classes cycling by column" if k else "unconditional")
    console().print(f"wrote {args.n} samples ({what}) to {out}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK
