"""The deterministic trees the layer, push and big cases write: same bytes on every run."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from benchmarks.measuring import fresh


def made(marker: Path) -> tuple[int, int]:
    """(files, bytes) of a tree made before: its MARKER file, written last, says so."""
    files, size = json.loads(marker.read_text())
    return int(files), int(size)


def random_words(rng: random.Random) -> list[str]:
    """5000 lowercase words of 2 to 10 letters, drawn from RNG (the same words for the same seed)."""
    return [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(5000)
    ]


def make_tree(root: Path, total: int = 300 * 1024 * 1024) -> tuple[int, int]:
    """A deterministic tree: about 3000 files in 60 folders, 40 % random bytes, 60 % text."""
    marker = root / ".complete"
    if marker.exists():
        return made(marker)
    fresh(root)
    rng = random.Random(20241123)
    words = random_words(rng)
    written = files = 0
    while written < total:
        folder = root / f"d{files % 60:02d}" / f"s{files % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        size = min(int(rng.lognormvariate(10.5, 1.2)), 4 * 1024 * 1024, total - written) or 1
        if rng.random() < 0.4:
            data = rng.randbytes(size)
            name = f"f{files:05d}.bin"
        else:
            text = []
            length = 0
            while length < size:
                line = " ".join(rng.choices(words, k=12)) + "\n"
                text.append(line)
                length += len(line)
            data = "".join(text).encode()[:size]
            name = f"f{files:05d}.txt"
        (folder / name).write_bytes(data)
        if files % 10 == 0:
            os.chmod(folder / name, 0o755)
        written += len(data)
        files += 1
    marker.write_text(json.dumps([files, written]))
    return files, written


def make_big_tree(root: Path, total: int, count: int) -> tuple[int, int]:
    """A deterministic tree of COUNT files, TOTAL bytes, lognormal sizes (≤ 64 MiB): 40 % random
    bytes, 60 % text slices of an 8 MiB corpus; 200 folders of 13 subfolders."""
    marker = root / ".complete"
    if marker.exists():
        return made(marker)
    fresh(root)
    rng = random.Random(20261201)
    words = random_words(rng)
    corpus = "\n".join(" ".join(rng.choices(words, k=12)) for _ in range(110_000)).encode()[: 8 * 2**20]
    sigma = 1.2
    mu = __import__("math").log(total / count) - sigma * sigma / 2
    written = files = 0
    while written < total:
        folder = root / f"d{files % 200:03d}" / f"s{files % 13}"
        folder.mkdir(parents=True, exist_ok=True)
        size = min(int(rng.lognormvariate(mu, sigma)), 64 * 2**20, total - written) or 1
        if rng.random() < 0.4:
            data = rng.randbytes(size)
            name = f"f{files:06d}.bin"
        else:
            start = rng.randrange(len(corpus))
            data = (corpus[start:] + corpus * (size // len(corpus) + 1))[:size]
            name = f"f{files:06d}.txt"
        (folder / name).write_bytes(data)
        if files % 10 == 0:
            os.chmod(folder / name, 0o755)
        written += len(data)
        files += 1
    marker.write_text(json.dumps([files, written]))
    return files, written
