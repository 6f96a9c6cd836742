"""Fan-in: join the word counts and the line statistics into one JSON report."""
import json
import os

from imagekit_runtime import step  # a warm step: the first input_path waits until counts and linestats are committed


def main() -> None:
    with open(step.input_path("linestats")) as stats_file:
        stats = json.load(stats_file)
    top = []
    distinct = 0
    counted = 0
    with open(step.input_path("counts")) as counts_file:
        for line in counts_file:
            word, count = line.rstrip("\n").split("\t")
            distinct += 1
            counted += int(count)
            if len(top) < 10:
                top.append([word, int(count)])
    report = {
        "shard": int(os.environ.get("IMAGEKIT_SHARD_INDEX", "0")),
        "lines": stats["lines"],
        "words": stats["words"],
        "bytes": stats["bytes"],
        "distinct_words": distinct,
        "counted_words": counted,
        "top10": top,
    }
    with open(os.environ["IMAGEKIT_OUT_REPORT"], "w") as out:
        json.dump(report, out, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
