"""Count token ids with numpy 2 (memory-mapped input) and write `word<TAB>count`, most frequent first."""
import os

import numpy as np

from imagekit_runtime import step  # a warm step: the first input_path waits until tokens and vocab are committed

assert np.__version__.startswith("2.1."), np.__version__


def main() -> None:
    tokens = np.load(step.input_path("tokens"), mmap_mode="r", allow_pickle=False)
    with open(step.input_path("vocab"), "rb") as vocab_file:
        vocab = vocab_file.read().split(b"\n")[:-1]
    counts = np.bincount(tokens, minlength=len(vocab)) if len(tokens) else np.zeros(len(vocab), dtype=np.int64)
    order = sorted(range(len(vocab)), key=lambda i: (-int(counts[i]), vocab[i]))
    with open(os.environ["IMAGEKIT_OUT_COUNTS"], "w", encoding="ascii") as out:
        for i in order:
            out.write(f"{vocab[i].decode()}\t{int(counts[i])}\n")


if __name__ == "__main__":
    main()
