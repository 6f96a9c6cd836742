"""The words of this shard in upper case."""
import os

with open(os.environ["IMAGEKIT_IN_PARTS"]) as parts, open(os.environ["IMAGEKIT_OUT_UPPER"], "w") as out:
    out.write(parts.read().upper())

