"""Distillation and cheaper architectures, side by side.

Sections (each measures ours and its baseline in the same run):

- `distillation` (`benchmarks/_distillation.py`): a small student trained
  alone, distilled from one teacher and from an ensemble of three.
- `architecture` (`benchmarks/_architecture.py`): low-rank MLPs from
  `factorize` (parameters against accuracy) and depthwise-separable against
  standard convolutions (parameters, MACs, LiteRT latency, accuracy).

Usage:

    python benchmarks/distillation.py             # 3 seeds
    python benchmarks/distillation.py --quick     # smoke test, temp output
    python benchmarks/distillation.py --sections architecture --seeds 1

Results go to `benchmarks/results/distillation.json`.
"""

import _architecture
import _distillation
import _harness

SECTIONS = {"distillation": _distillation, "architecture": _architecture}


def main(argv=None):
    return _harness.main(
        "distillation", SECTIONS,
        "Distillation (one teacher, an ensemble) and low-rank / "
        "depthwise-separable architectures on MNIST-1D and digits.", argv)


if __name__ == "__main__":
    main()
