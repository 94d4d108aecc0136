"""Deep Compression on the device, side by side with tfmot.

Sections:

- `pipeline` (`benchmarks/_deep_compression.py`): a LeNet-300-100-shaped
  MLP and a small CNN on MNIST-1D and digits, float32 -> pruned -> clustered
  -> QAT int8 -> lean LiteRT file and DECODE-compressed TFLite Micro
  bundle, against tfmot's pruning + prune-preserving clustering + PCQAT
  from the same trained float weights; accuracy and bytes at each stage.
- `binary`: a BinaryDense MLP's TFLite Micro bundle (1-bit tables) against
  the float32 MLP file.

Usage:

    python benchmarks/deep_compression.py            # 3 seeds
    python benchmarks/deep_compression.py --quick    # smoke test, temp output

Needs the `bench` extra (tensorflow-model-optimization, tf_keras). Results
go to `benchmarks/results/deep_compression.json`.
"""

import _binary
import _deep_compression
import _harness

SECTIONS = {"pipeline": _deep_compression, "binary": _binary}


def main(argv=None):
    return _harness.main(
        "deep_compression", SECTIONS,
        "Deep Compression (prune, cluster, QAT int8, LUT/Huffman) against "
        "tfmot on MNIST-1D and digits.", argv)


if __name__ == "__main__":
    main()
