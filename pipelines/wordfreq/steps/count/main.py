"""Count token ids with numpy 2 (memory-mapped input) and write `word<TAB>count`, most frequent first."""
import os

import numpy as np

assert np.__version__.startswith("2.1."), np.__version__


def main() -> None:
    tokens = np.load(os.environ["IMAGEKIT_IN_TOKENS"], mmap_mode="r", allow_pickle=False)
    with open(os.environ["IMAGEKIT_IN_VOCAB"], "rb") as vocab_file:
        vocab = vocab_file.read().split(b"\n")[:-1]
    counts = np.bincount(tokens, minlength=len(vocab)) if len(tokens) else np.zeros(len(vocab), dtype=np.int64)
    order = sorted(range(len(vocab)), key=lambda i: (-int(counts[i]), vocab[i]))
    with open(os.environ["IMAGEKIT_OUT_COUNTS"], "w", encoding="ascii") as out:
        for i in order:
            out.write(f"{vocab[i].decode()}\t{int(counts[i])}\n")


if __name__ == "__main__":
    main()
