"""The delphes backend with the real DelphesHepMC2 and hepmc2pileup that `make delphes` builds.

Skipped, with the reason, where Delphes is not built (or not on PATH / in a conda environment). What these
show that the fake tools cannot: the wrapper card really reaches Delphes (the shard's RandomSeed makes its
output reproducible; the pile-up file and ⟨μ⟩ override the card's own PileUpMerger settings, whose
MinBias_100k.pileup does not exist here), and the cards that `source` sub-folders resolve from the install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colliderflow.generate.backends.delphes_install import DELPHES_EXECUTABLE, PILEUP_EXECUTABLE, find_tool

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_tool(DELPHES_EXECUTABLE) is None or find_tool(PILEUP_EXECUTABLE) is None,
        reason="Delphes is not built here (make delphes)",
    ),
]

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")

JETCLASS2_CARD = Path(__file__).resolve().parents[2] / "shared/data/delphes-cards/delphes_card_CMS_JetClassII.tcl"
PP = {"sqrt_s": 14000.0, "detector": "clic_like"}
EE = {"sqrt_s": 380.0, "detector": "clic_like"}


def _generate(out: Path, *, process: str, params: dict, seed: int, n_events: int, options: dict,
              pileup_file: Path | None = None) -> dict:
    from colliderflow.generate.run import generate_shard

    return generate_shard(sample="s", process=process, backend="delphes", shard=0, n_events=n_events, seed=seed,
                          params=params, output=out, provenance=None, backend_options=options,
                          process_options={"mpi": False} if process.startswith("pp_") else None,
                          pileup_file=pileup_file)  # fmt: skip


def test_clic_card_runs_from_the_install_and_the_shard_seed_makes_it_reproducible(tmp_path: Path) -> None:
    options = {"card": "delphes_card_CLICdet_Stage1.tcl"}  # sources CLIC/*.tcl from the installed cards tree
    files = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        files[name] = tmp_path / f"{name}.root"
        _generate(files[name], process="ee_ttbar", params=EE, seed=seed, n_events=10, options=options)
    arrays = {}
    for name, path in files.items():
        with uproot.open(path) as fh:
            tree = fh["Delphes"]
            assert tree.num_entries == 10
            assert {"EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron", "Track", "Tower", "Particle"} <= set(tree.keys(
                recursive=False))
            arrays[name] = ak.flatten(tree["Tower/Tower.E"].array())
    assert ak.all(arrays["a"] == arrays["b"])  # same shard seed: the same smearing
    assert len(arrays["a"]) != len(arrays["c"]) or not ak.all(arrays["a"] == arrays["c"])


@pytest.mark.skipif(not JETCLASS2_CARD.is_file(), reason=f"{JETCLASS2_CARD} is absent (../shared beside the repo)")
def test_pileup_file_and_mean_override_the_cards_own(tmp_path: Path) -> None:
    from colliderflow.generate.backends.pileup import make_pileup_file

    pileup = tmp_path / "mb.pileup"
    make_pileup_file(pileup, sqrt_s=14000.0, n_events=40, seed=3)
    assert pileup.stat().st_size > 0
    vertices, pu_fraction = {}, {}
    for mean in (0.0, 8.0):
        out = tmp_path / f"pu{mean:g}.root"
        _generate(out, process="pp_qcd", params=PP, seed=9, n_events=20, pileup_file=pileup,
                  options={"card": str(JETCLASS2_CARD), "pileup": {"mean": mean}})  # fmt: skip
        with uproot.open(out) as fh:
            tree = fh["Delphes"]
            vertices[mean] = float(np.mean(tree["Vertex_size"].array(library="np")))
            is_pu = ak.flatten(tree["ParticleFlowCandidate/ParticleFlowCandidate.IsPU"].array())
            pu_fraction[mean] = float(ak.mean(is_pu))
    # The card asks for ⟨μ⟩ = 50 from MinBias_100k.pileup; the runs got no pile-up, then about 8 interactions.
    assert pu_fraction[0.0] == 0.0
    assert pu_fraction[8.0] > 0.05
    assert 5.0 < vertices[8.0] - vertices[0.0] < 11.0
