"""Throughput of the jet-level (JetClass-II) ntuplizer: jets per second for each stage and end to end.

The real Delphes example (10 events of HH → 2-prong, JetClass-II card) is read once and replicated to a
few thousand events, so that the timed stages see real multiplicities and stable numbers. Reading is
timed on the file itself: uproot cannot write TRefArrays, so there is no bigger Delphes file to make.

    .venv/bin/python benchmarks/bench_jets.py [--copies 300] [--repeat 3] [--json benchmarks/results/jets.json]

Each figure is the median of `repeat` runs after one warm-up run (which also compiles the numba kernels);
wall and CPU seconds are both reported because shared machines make wall time noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq

from colliderflow.io.delphes_reader import DelphesFile, read_delphes
from colliderflow.ntuplize.jet_labels import GenRecord, LabelParams, label_jets
from colliderflow.ntuplize.jet_substructure import SubstructureParams, jet_substructure
from colliderflow.ntuplize.delphes_jets import ntuplize_delphes_jets
from colliderflow.ntuplize.jet_arrays import filtered_jets, flatten, jet_set_from
from colliderflow.ntuplize.jets import JetParams, build_tables, jets_from_particles

DELPHES = Path(__file__).resolve().parents[2] / "shared" / "data" / "delphes" / "sophon_events_delphes_example.root"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median wall s, median CPU s, last result) over `repeat` runs after a warm-up."""
    result = fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), result


def replicate(array: ak.Array | None, copies: int) -> ak.Array | None:
    return None if array is None else ak.concatenate([array] * copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=300, help="replicas of the 10 Delphes events")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if not DELPHES.is_file():
        raise SystemExit(f"benchmark input not found: {DELPHES}")

    rows: list[dict[str, Any]] = []

    def report(stage: str, wall: float, cpu: float, jets: int, events: int) -> None:
        rate_wall = jets / wall if jets else 0.0
        rate_cpu = jets / cpu if jets and cpu > 0 else 0.0
        rows.append(
            {
                "stage": stage,
                "events": events,
                "jets": jets,
                "wall_s": round(wall, 4),
                "cpu_s": round(cpu, 4),
                "jets_per_s_wall": round(rate_wall, 1),
                "jets_per_s_cpu": round(rate_cpu, 1),
            }
        )
        print(
            f"{stage:<38} {events:>7} ev {jets:>7} jets  {wall:8.3f} s wall {cpu:8.3f} s cpu  "
            f"{rate_wall:10.0f} jets/s (wall) {rate_cpu:10.0f} jets/s (cpu)"
        )

    # Reading: the real file (open = parse the tree's metadata; read = the branches of all entries).
    wall, cpu, _ = timed(lambda: DelphesFile(DELPHES).close(), args.repeat)
    report("open Delphes file (tree metadata)", wall, cpu, 0, 0)
    with DelphesFile(DELPHES) as handle:
        wall, cpu, events = timed(handle.read, args.repeat)
    n_file_jets = int(ak.sum(ak.num(events.jets, axis=1)))
    report("read + resolve refs (10 events)", wall, cpu, n_file_jets, events.n_events)

    base = read_delphes(DELPHES)
    pf, gen, jets, genjets, vertex = (
        replicate(getattr(base, k), args.copies) for k in ("pf", "gen", "jets", "genjets", "vertex")
    )
    n_events = len(pf)
    params = JetParams()

    wall, cpu, (table, _) = timed(lambda: build_tables(pf, jets, gen, genjets, vertex, params), args.repeat)
    report("build rows, Delphes jets (refs)", wall, cpu, table.num_rows, n_events)
    wall, cpu, table_rc = timed(lambda: jets_from_particles(pf, gen, vertex=vertex, params=params), args.repeat)
    report("cluster + build rows (recluster)", wall, cpu, table_rc.num_rows, n_events)

    # Stages on their own, on the jets of the refs build.
    rows_ak = ak.from_arrow(table)
    flat = [ak.to_numpy(ak.flatten(rows_ak[f"part_{k}"])).astype(np.float64) for k in ("px", "py", "pz", "energy")]
    counts = ak.to_numpy(rows_ak.jet_nparticles)
    for backend in ("numba", "fastjet"):
        subset = slice(None) if backend == "numba" else slice(0, min(len(counts), 500))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        stop = offsets[len(counts[subset])]
        wall, cpu, _ = timed(
            lambda b=backend, s=subset, e=stop: jet_substructure(
                *(f[:e] for f in flat), counts[s], SubstructureParams(backend=b)
            ),
            args.repeat,
        )
        report(f"substructure only ({backend})", wall, cpu, len(counts[subset]), 0)
    reco = flatten(pf, ("px", "py", "pz", "energy", "charge", "pid"), {}, "pf")
    truth = flatten(gen, ("px", "py", "pz", "energy", "pid", "d1", "d2"), {}, "gen")
    found = filtered_jets(jet_set_from(jets, reco, "jets"), reco, max_abs_eta=params.max_constituent_abs_eta,
                          max_abs_pz=params.max_constituent_abs_pz)
    record = GenRecord(truth.offsets, *(truth.data[k] for k in ("pid", "px", "py", "pz", "d1", "d2")))
    jet_event, jet_eta, jet_phi = found.event, found.eta, found.phi
    wall, cpu, _ = timed(lambda: label_jets(record, jet_event, jet_eta, jet_phi, LabelParams()), args.repeat)
    report("labels only", wall, cpu, len(jet_event), n_events)

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "jets.parquet"
        wall, cpu, _ = timed(
            lambda: pq.write_table(table, target, compression="zstd", use_dictionary=False), args.repeat
        )
        report("write Parquet (zstd)", wall, cpu, table.num_rows, n_events)
        wall, cpu, stats = timed(
            lambda: ntuplize_delphes_jets([DELPHES], output=Path(tmp) / "e2e.parquet", params={}, provenance=None),
            args.repeat,
        )
        report("ntuplize_delphes_jets, whole file", wall, cpu, stats["jets_written"], stats["events"])

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"copies": args.copies, "repeat": args.repeat, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
