"""Time per event of each Delphes route: Pythia → HepMC2 alone, then the whole shard through DelphesHepMC2.

Usage: python benchmarks/bench_delphes.py [--events 100] [--cards CARD ...] [--mean-pileup 5 50]
       [--jetclass2-card ../shared/data/delphes-cards/delphes_card_CMS_JetClassII.tcl]
Needs `make delphes`. Prints, per route, the wall time of writing the HepMC2 file alone (the reference, in
the same process) and of the whole shard (Pythia + HepMC2 + Delphes), in ms/event and events/s, and the
Delphes share. Routes: e+e- → tt̄ at 380 GeV with the CLIC card; pp → tt̄ (hadronic, p̂T > 400 GeV, MPI on) at
14 TeV with the stock CMS card and with JetClass-II's card at each ⟨μ⟩ (pile-up file made first, timed apart).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from colliderflow.generate.backends.hepmc import write_hepmc2
from colliderflow.generate.backends.pileup import make_pileup_file
from colliderflow.generate.run import generate_shard

ROOT = Path(__file__).resolve().parents[1]
JETCLASS2_CARD = ROOT.parent / "shared/data/delphes-cards/delphes_card_CMS_JetClassII.tcl"
EE = ("ee_ttbar", 380.0, None)
PP = ("pp_ttbar_had", 14000.0, {"mpi": True})


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _row(name: str, n: float, hepmc_s: float, total_s: float) -> None:
    print(f"{name:58s} {1e3 * hepmc_s / n:9.1f} {1e3 * total_s / n:9.1f} {n / total_s:8.1f} "
          f"{100 * (total_s - hepmc_s) / total_s:8.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--cards", nargs="*", default=["delphes_card_CLICdet_Stage1.tcl", "delphes_card_CMS.tcl"])
    parser.add_argument("--mean-pileup", nargs="*", type=float, default=[5.0, 50.0])
    parser.add_argument("--minbias-events", type=int, default=500)
    parser.add_argument("--jetclass2-card", type=Path, default=JETCLASS2_CARD)
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hepmc_time = {}
        for process, sqrt_s, options in (EE, PP):
            hepmc_time[process] = _time(lambda p=process, s=sqrt_s, o=options: write_hepmc2(
                work / f"{p}.hepmc", process=p, sqrt_s=s, n_events=n, seed=1, process_options=o))
        print(f"{'route':58s} {'HepMC ms':>9s} {'total ms':>9s} {'ev/s':>8s} {'Delphes':>9s}   ({n} events)")
        routes = [(card, EE if "CLIC" in card or "ILD" in card or "IDEA" in card or "FCCee" in card else PP, {})
                  for card in args.cards]
        if not args.jetclass2_card.is_file() and args.mean_pileup:
            print(f"(no pile-up routes: {args.jetclass2_card} is absent)")
        elif args.mean_pileup:
            pileup = work / "mb.pileup"
            pu_s = _time(lambda: make_pileup_file(pileup, sqrt_s=14000.0, n_events=args.minbias_events, seed=2))
            print(f"(pile-up file: {args.minbias_events} minimum-bias events in {pu_s:.1f} s, "
                  f"{1e3 * pu_s / args.minbias_events:.1f} ms/event)")
            routes += [(str(args.jetclass2_card), PP, {"pileup": {"mean": mu}, "_file": pileup}) for mu in args.mean_pileup]
        for i, (card, (process, sqrt_s, options), extra) in enumerate(routes):
            pileup_file = extra.pop("_file", None)
            backend_options = {"card": card, **extra}
            total = _time(lambda: generate_shard(
                sample="bench", process=process, backend="delphes", shard=0, n_events=n, seed=1,
                params={"sqrt_s": sqrt_s, "detector": "clic_like"}, output=work / f"{i}.root", provenance=None,
                backend_options=backend_options, process_options=options, pileup_file=pileup_file))
            label = f"{process} {Path(card).name}" + (f" <mu>={extra['pileup']['mean']:g}" if extra else "")
            _row(label, n, hepmc_time[process], total)


if __name__ == "__main__":
    main()
