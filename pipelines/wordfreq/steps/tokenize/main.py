"""Map every word of the corpus to an id: tokens (uint32 .npy) and vocab (one word per line).

Reads the corpus zero-copy through mmap. Pinned to numpy 1.26.
"""
import mmap
import os

import numpy as np

assert np.__version__.startswith("1.26."), np.__version__


def main() -> None:
    ids: dict[bytes, int] = {}
    with open(os.environ["IMAGEKIT_IN_CORPUS"], "rb") as source:
        size = os.fstat(source.fileno()).st_size
        text = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        words = text.split()
    tokens = np.fromiter((ids.setdefault(w, len(ids)) for w in words), dtype=np.uint32, count=len(words))
    np.save(os.environ["IMAGEKIT_OUT_TOKENS"], tokens, allow_pickle=False)
    os.replace(os.environ["IMAGEKIT_OUT_TOKENS"] + ".npy", os.environ["IMAGEKIT_OUT_TOKENS"])
    with open(os.environ["IMAGEKIT_OUT_VOCAB"], "wb") as vocab:
        vocab.write(b"\n".join(ids) + (b"\n" if ids else b""))


if __name__ == "__main__":
    main()
