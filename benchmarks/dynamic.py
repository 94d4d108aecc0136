"""Dynamic computation, side by side: early exits and slimmable widths.

Sections (each measures ours and its baseline in the same run):

- `early_exit` (`benchmarks/_early_exit.py`): a CNN with two early exits
  against the same network always run to the end: accuracy, average MACs
  and LiteRT latency per sample over a sweep of confidence thresholds.
- `early_exit_latency` (`benchmarks/_early_exit_latency.py`): the same
  idea on bigger backbones (a MobileNet-style CNN on 32x32 digits, a wider
  MNIST-1D CNN), measured on the device: the plain model, the per-stage
  chain and the single file (`export_early_exit_file`), float32 and int8,
  in LiteRT (1 thread) and TFLite Micro.
- `early_exit_heads` (`benchmarks/_early_exit_heads.py`): candidate
  early-exit heads trained on the same backbones' frozen features:
  accuracy per exit against MACs; picks `add_early_exits`'s default head.
- `slimmable` (`benchmarks/_slimmable.py`): one slimmable CNN trained with
  the sandwich rule against plain models of each width trained on their own.

Usage:

    python benchmarks/dynamic.py              # 3 seeds, MNIST-1D and digits
    python benchmarks/dynamic.py --quick      # smoke test, temp output
    python benchmarks/dynamic.py --sections slimmable --seeds 1
    python benchmarks/dynamic.py --sections early_exit_latency early_exit_heads

Results go to `benchmarks/results/dynamic.json`.
"""

import _early_exit
import _early_exit_heads
import _early_exit_latency
import _harness
import _slimmable

SECTIONS = {"early_exit": _early_exit, "early_exit_latency": _early_exit_latency,
            "early_exit_heads": _early_exit_heads, "slimmable": _slimmable}


def main(argv=None):
    return _harness.main(
        "dynamic", SECTIONS,
        "Early exits and slimmable widths on MNIST-1D and digits.", argv)


if __name__ == "__main__":
    main()
