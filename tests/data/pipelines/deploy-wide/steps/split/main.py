"""Write a few words for this shard."""
import os

shard = int(os.environ["IMAGEKIT_SHARD_INDEX"])
with open(os.environ["IMAGEKIT_OUT_PARTS"], "w") as out:
    out.write(" ".join(f"Word{shard}-{i}" for i in range(10)) + "\n")
