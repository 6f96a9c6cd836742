"""The vocabulary build, run and deploy share: the pipeline spec, the runtime contract, exit codes and
errors, quantities, image references and label names, the one subprocess wrapper, flags as data.
It imports none of them; the image carries it beside the runtime."""
