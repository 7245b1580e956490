"""What train() holds per jet once a tagger's input is set up: the split, the sampling weights, the lengths.

Opens the jet dataset of a bench_loader cache directory (`--data DIR`, holding jets/ and jet_weights.parquet:
run benchmarks/bench_loader.py first), then does what TaggingTask and train() do before the first batch:
the hash train/validation split (JetSubset), the weights join spilled to a scratch file
(read_item_weights on the training set) and the bucketing lengths (TaggingTask.lengths' spill). Prints

    <n> training jets: RSS after the dataset <a> MB, after the setup <b> MB, high-water <c> MB

where the difference b − a is what the setup keeps for the run and c the peak while it ran.

    nice -n 10 python benchmarks/bench_train_setup.py --data /tmp/colliderflow-bench-loader/jets_10000000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _status(name: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(name))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a bench_loader jets_<N> directory")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-particles", type=int, default=128)
    args = parser.parse_args()

    from colliderflow.io.dataset_files import jet_files
    from colliderflow.train.item_weights import ItemWeights
    from colliderflow.train.jet_data import JetDataset, split_train_val
    from colliderflow.train.sampling import read_item_weights

    dataset = JetDataset(jet_files([args.data / "jets"]), labels=[0, 1, 2])
    before = _status("VmRSS:")
    train_set, _ = split_train_val(dataset, args.val_fraction)
    weights = read_item_weights(args.data / "jet_weights.parquet", train_set)
    cap = args.max_particles
    lengths = ItemWeights.spill_chunks(len(train_set), (np.minimum(n, cap).astype(np.int32)
                                                        for n in train_set.n_particles_pieces()), dtype=np.int32)
    assert len(weights) == len(lengths) == len(train_set)
    print(f"{len(train_set)} training jets: RSS after the dataset {before:.0f} MB, after the setup "
          f"{_status('VmRSS:'):.0f} MB, high-water {_status('VmHWM:'):.0f} MB")


if __name__ == "__main__":
    main()
