"""A small, learnable data set in MNIST's exact file format, made on the spot.

Tests and CI never need the real MNIST: digits are drawn with the fonts that ship
with matplotlib, then rotated, scaled, shifted and noised so that a model has
something to learn, and written as the four IDX files that `chainer_mnist.py` reads.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FONTS = ["DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono"]


def write_idx(path, array):
    """Write a uint8 array as an IDX file (gzip-compressed when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _digit(rng, label, fonts):
    font = fonts[rng.integers(len(fonts))]
    canvas = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(canvas).text((28, 28), str(label), fill=255, font=font, anchor="mm", stroke_width=1, stroke_fill=255)
    canvas = canvas.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, translate=tuple(rng.uniform(-4, 4, size=2)))
    side = int(rng.integers(26, 34))
    image = np.asarray(
        canvas.resize((side, side), Image.BILINEAR).crop(
            ((side - 28) // 2, (side - 28) // 2, (side - 28) // 2 + 28, (side - 28) // 2 + 28)
        ),
        dtype=np.float32,
    )
    image += rng.normal(0, 20, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_digits(n, seed=0):
    """Return (images uint8 [n, 28, 28], labels uint8 [n]) with balanced classes."""
    rng = np.random.default_rng(seed)
    fonts = [ImageFont.truetype(font_manager.findfont(name), 46) for name in FONTS]
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = np.stack([_digit(rng, label, fonts) for label in labels])
    return images, labels


def write_dataset(directory, n_train=2000, n_test=500, seed=0):
    """Write the four MNIST files into `directory` and return it as a Path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images, labels = make_digits(n, split_seed)
        image_file, label_file = FILES[split]
        write_idx(directory / image_file, images)
        write_idx(directory / label_file, labels)
    return directory


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_dataset(args.directory, args.train, args.test, args.seed))
