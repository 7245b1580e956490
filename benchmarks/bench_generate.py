"""Events per second of the generate stage: Pythia alone against Pythia + detector simulation + writing.

The goal is that the detector simulation and the ROOT writing together add at most 25 % to the time
Pythia needs to make the events. Each phase is timed inside one run (same process, same events), as CPU
time and wall time, so that the ratio holds up on a machine shared with other jobs; with --repeat the
fastest of the repeats is kept for each phase. One-off costs per job (Pythia's initialisation, loading
the compiled numba kernels) are left out of the rates and printed separately.

    python benchmarks/bench_generate.py [--events 2000] [--repeat 3] [--processes ee_ttbar ee_qq ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from colliderflow.generate.detector import detector_rng, simulate_detector
from colliderflow.generate.geometry import detector_config
from colliderflow.generate.pythia import PythiaGenerator
from colliderflow.generate.rootio import SimTreeWriter
from colliderflow.generate.run import EVENTS_PER_CHUNK, collections, event_columns
from colliderflow.io.atomic import atomic_path

SQRT_S_GEV = 380.0
GOAL_OVERHEAD = 0.25


@dataclass
class Clock:
    """Accumulated wall and CPU seconds of one phase."""

    wall: float = 0.0
    cpu: float = 0.0
    _start: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def __enter__(self) -> Self:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]


def bench_next_only(process: str, n_events: int, seed: int) -> Clock:
    """Pythia's own event loop, no particle extraction: the floor for any Python driver."""
    generator = PythiaGenerator(process, sqrt_s=SQRT_S_GEV, seed=seed)
    pythia = generator._pythia  # the raw loop is the point of this measurement
    clock = Clock()
    with clock:
        for _ in range(n_events):
            pythia.next()
    return clock


def bench_pipeline(process: str, n_events: int, seed: int, out_dir: Path) -> dict[str, Clock]:
    """Pythia (generation + final-state extraction), detector and writer, timed phase by phase."""
    detector = detector_config("clic_like")
    clocks = {"init": Clock(), "pythia": Clock(), "detector": Clock(), "write": Clock()}
    with clocks["init"]:
        generator = PythiaGenerator(process, sqrt_s=SQRT_S_GEV, seed=seed)
    rng = detector_rng(seed)
    with atomic_path(out_dir / f"{process}.root") as tmp:
        writer = SimTreeWriter(tmp, identity={"bench": process})
        with clocks["write"]:
            writer.__enter__()
        for first in range(0, n_events, EVENTS_PER_CHUNK):
            with clocks["pythia"]:
                gen = generator.generate(min(EVENTS_PER_CHUNK, n_events - first))
            with clocks["detector"]:
                response = simulate_detector(gen, detector, rng)
            with clocks["write"]:
                writer.append(event_columns(gen, first_event=first), collections(gen, response))
        with clocks["write"]:
            writer.__exit__(None, None, None)  # flushes the buffered events: the bulk of the writing
    return clocks


def best(runs: list[dict[str, Clock]]) -> dict[str, Clock]:
    """The fastest of repeated runs, phase by phase (the least disturbed by other jobs)."""
    return {phase: min((r[phase] for r in runs), key=lambda c: c.cpu) for phase in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--processes", nargs="+", default=["ee_ttbar", "ee_qq", "ee_ww_fullhad"])
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()

    start = time.perf_counter()
    warm = PythiaGenerator("ee_qq", sqrt_s=SQRT_S_GEV, seed=args.seed)
    simulate_detector(warm.generate(5), detector_config("clic_like"), detector_rng(args.seed))
    print(f"one-off: loading (or compiling) the numba kernels + a first Pythia: {time.perf_counter() - start:.1f} s")

    header = (
        f"{'process':<15}{'next() only':>13}{'pythia':>10}{'full':>10}"
        f"{'det ms/ev':>11}{'write ms/ev':>13}{'overhead cpu':>14}{'overhead wall':>15}{'init s':>8}"
    )
    print(f"{args.events} events per process, sqrt(s) = {SQRT_S_GEV} GeV; rates in events/s (CPU time)")
    print("pythia = generation + final-state extraction; full = pythia + detector simulation + ROOT writing")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for process in args.processes:
            raw = min(
                (bench_next_only(process, args.events, args.seed) for _ in range(args.repeat)), key=lambda c: c.cpu
            )
            clocks = best([bench_pipeline(process, args.events, args.seed, Path(tmp)) for _ in range(args.repeat)])
            n = args.events
            pythia_cpu = clocks["pythia"].cpu
            sim_cpu = clocks["detector"].cpu + clocks["write"].cpu
            sim_wall = clocks["detector"].wall + clocks["write"].wall
            print(
                f"{process:<15}{n / raw.cpu:>13.0f}{n / pythia_cpu:>10.0f}{n / (pythia_cpu + sim_cpu):>10.0f}"
                f"{1e3 * clocks['detector'].cpu / n:>11.3f}{1e3 * clocks['write'].cpu / n:>13.3f}"
                f"{sim_cpu / pythia_cpu:>14.1%}{sim_wall / clocks['pythia'].wall:>15.1%}{clocks['init'].wall:>8.2f}"
            )
    print(f"goal: overhead (detector + write) / pythia <= {GOAL_OVERHEAD:.0%}")


if __name__ == "__main__":
    main()
