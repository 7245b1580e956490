"""Run standard Delphes cards through the project's own chain and print what each gives.

For every card: `colliderflow generate --backend delphes` (Pythia 8 → HepMC2 → DelphesHepMC2), then the
event-level ntuplizer and its validation (energy closure, track elements with a target, baseline
classes), then the jet ntuplizer (Delphes' jets or reclustered, as the card allows). Nothing here is a
test: it measures, and a card that fails says where and why.

    python benchmarks/delphes_cards.py --events 50 --workdir /scratch/cards [--json OUT] [CARD ...]

Needs a Delphes installation (`make delphes`). e+e- cards get e+e- → tt̄ at 380 GeV, pp cards pp → tt̄
(hadronic) at 14 TeV.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np

EE_CARDS = ("delphes_card_CLICdet_Stage1.tcl", "delphes_card_ILD.tcl", "delphes_card_IDEA.tcl",
            "delphes_card_FCCeeDetWithSiTracking.tcl")
PP_CARDS = ("delphes_card_CMS.tcl", "delphes_card_ATLAS.tcl")


def generate(card: str, *, events: int, work: Path) -> tuple[Path, float]:
    pp = Path(card).name not in EE_CARDS
    params = {"sqrt_s": 14000.0 if pp else 380.0, "detector": "clic_like"}
    out = work / f"{Path(card).stem}.root"
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "colliderflow", "generate", "--sample", Path(card).stem,
         "--process", "pp_ttbar_had" if pp else "ee_ttbar", "--backend", "delphes", "--shard", "0",
         "--n-events", str(events), "--seed", "11", "--params", json.dumps(params),
         "--backend-options", json.dumps({"card": card}), "-o", str(out)],
        capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"generate failed: {run.stderr.strip().splitlines()[-1:]}")
    return out, time.perf_counter() - start


def measure(card: str, *, events: int, work: Path) -> dict:
    from colliderflow.ntuplize.delphes_jets import ntuplize_delphes_jets
    from colliderflow.ntuplize.events import ntuplize_files
    from colliderflow.ntuplize.validate import validate_dataset
    from colliderflow.schema import PF

    result: dict = {"card": card}
    try:
        root, seconds = generate(card, events=events, work=work)
        result["generate_s_per_event"] = seconds / events
        parquet = work / f"{Path(card).stem}.parquet"
        start = time.perf_counter()
        ntuplize_files([root], output=parquet, sample=Path(card).stem, shard=0, params={}, seed=1, provenance=None)
        result["ntuplize_events_per_s"] = events / (time.perf_counter() - start)
        summary_path = work / f"{Path(card).stem}.validation.json"
        try:
            validate_dataset([parquet], params={}, summary=summary_path, plot=work / f"{Path(card).stem}.png")
            result["validation"] = "passed"
        except ValueError as exc:
            result["validation"] = f"failed: {str(exc).split(': ', 2)[-1]}"
        summary = json.loads(summary_path.read_text())
        result["closure_median"] = summary["closure"]["median"]
        result["closure_outlier_fraction"] = summary["closure"]["outlier_fraction"]
        table = ak.from_parquet(parquet)
        x = ak.to_numpy(ak.flatten(table.X, axis=1))
        target = ak.to_numpy(ak.flatten(table.ytarget, axis=1))
        tracks, clusters = x[:, 0] == 1, x[:, 0] == 2
        result["track_target_fraction"] = float(np.mean(target[tracks, PF["cls_id"]] > 0))
        result["cluster_target_fraction"] = float(np.mean(target[clusters, PF["cls_id"]] > 0))
        result["elements_per_event"] = float(len(x) / len(table))
        start = time.perf_counter()
        stats = ntuplize_delphes_jets([root], output=work / f"{Path(card).stem}.jets.parquet",
                                      params={}, provenance=None)
        result["jets_events_per_s"] = events / (time.perf_counter() - start)
        result["jets"] = {"mode": stats["constituents"][str(root)], "particles": stats["particles"][str(root)],
                          "written": stats["jets_written"], "with_genjet": stats["jets_with_genjet"]}
    except Exception as exc:  # a survey: report the failure of this card and go on with the next
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cards", nargs="*", default=[*EE_CARDS, *PP_CARDS])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for card in args.cards:
        r = measure(card, events=args.events, work=args.workdir)
        results.append(r)
        print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
