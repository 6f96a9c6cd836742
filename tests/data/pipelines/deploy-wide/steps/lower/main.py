"""The words of this shard in lower case."""
import os

with open(os.environ["IMAGEKIT_IN_PARTS"]) as parts, open(os.environ["IMAGEKIT_OUT_LOWER"], "w") as out:
    out.write(parts.read().lower())

