"""Write a deterministic text corpus of WORDFREQ_BYTES bytes for this shard.

Words follow a Zipf-like distribution over a fixed vocabulary; the shard index
seeds the generator, so every shard has different text and re-runs are identical.
"""
import os
import random
import re

SIZE_UNITS = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "an", "el"]
CHUNK = 1 << 20


def parse_size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|)", text.strip()).groups()
    return int(number) * SIZE_UNITS[unit]


def vocabulary(rng: random.Random, count: int = 5000) -> list[str]:
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    ordered = sorted(words)
    rng.shuffle(ordered)  # frequency rank independent of spelling
    return ordered


def main() -> None:
    total = parse_size(os.environ.get("WORDFREQ_BYTES", "8Mi"))
    shard = int(os.environ.get("IMAGEKIT_SHARD_INDEX", "0"))
    rng = random.Random(1000 + shard)
    words = vocabulary(random.Random(7))
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    # A pool of lines, drawn once, then sampled: fast enough for a GiB, still deterministic.
    pool = []
    for _ in range(4096):
        line = " ".join(rng.choices(words, weights, k=rng.randint(3, 14)))
        pool.append(line + "\n")
    written = 0
    with open(os.environ["IMAGEKIT_OUT_CORPUS"], "w", encoding="ascii") as out:
        while written < total:
            block = "".join(rng.choices(pool, k=256))
            block = block[: total - written]
            if not block.endswith("\n"):  # keep the corpus made of whole lines
                block = block[:-1] + "\n" if len(block) > 1 else "\n"
            out.write(block)
            written += len(block)


if __name__ == "__main__":
    main()
