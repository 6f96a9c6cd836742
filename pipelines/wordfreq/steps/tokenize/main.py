"""Map every word of the corpus to an id: tokens (uint32 .npy) and vocab (one word per line).

Reads the corpus zero-copy (numpy over an mmap of shared memory) and tokenizes
it vectorised, so a GiB of text takes seconds. Pinned to numpy 1.26.
"""
import mmap
import os

import numpy as np

from imagekit_runtime import step  # a warm step: the first input_path waits until the corpus is committed

assert np.__version__.startswith("1.26."), np.__version__

WHITESPACE = np.zeros(256, dtype=bool)
WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True


def tokenize(text: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
    is_space = WHITESPACE[text]
    edges = np.diff(np.concatenate(([1], is_space.view(np.int8), [1])).astype(np.int8))
    starts = np.flatnonzero(edges == -1)
    ends = np.flatnonzero(edges == 1)
    lengths = ends - starts
    if len(starts) and lengths.max() > 8:  # words longer than 8 bytes: exact, slower path
        words = [bytes(text[s:e]) for s, e in zip(starts, ends, strict=True)]
        vocab, tokens = np.unique(np.array(words, dtype=object), return_inverse=True)
        return tokens.astype(np.uint32), list(vocab)
    keys = np.zeros(len(starts), dtype=np.uint64)
    for offset in range(8):  # pack each word's bytes into one uint64
        present = lengths > offset
        keys[present] |= text[starts[present] + offset].astype(np.uint64) << np.uint64(8 * offset)
    unique_keys = np.unique(keys)  # a plain sort (SIMD); ids by binary search beat return_inverse's argsort
    tokens = np.searchsorted(unique_keys, keys)
    vocab = [int(k).to_bytes(8, "little").rstrip(b"\0") for k in unique_keys]
    return tokens.astype(np.uint32), vocab


def main() -> None:
    with open(step.input_path("corpus"), "rb") as source:
        if os.fstat(source.fileno()).st_size:
            view = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
            tokens, vocab = tokenize(np.frombuffer(view, dtype=np.uint8))
        else:
            tokens, vocab = np.zeros(0, dtype=np.uint32), []
    with open(os.environ["IMAGEKIT_OUT_TOKENS"], "wb") as out:
        np.save(out, tokens, allow_pickle=False)
    with open(os.environ["IMAGEKIT_OUT_VOCAB"], "wb") as out:
        out.write(b"".join(word + b"\n" for word in vocab))


if __name__ == "__main__":
    main()
