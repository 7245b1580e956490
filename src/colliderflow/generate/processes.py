"""Pythia settings for the e+e- and pp processes the builtin backend knows, and for their beams.

The process catalogue lives here, apart from the driver, so that adding a process is one entry and the
provenance of a sample can quote exactly the strings Pythia was given.

Beam choices for every e+e- process follow key4hep-sim's CLIC cards (`clic/pythia/p8_ee_*_ecm380.cmd`,
the generator cards of the published CLIC MLPF datasets), so that the builtin, Delphes and Key4HEP
backends all see the same beams (all three call `beam_settings` through `PythiaGenerator`, and the
Key4HEP card is written from the generator's own settings):

* `PDF:lepton = on`, `PartonLevel:ISR = on`: initial-state photon radiation. The beam leptons carry a
  fraction of the beam energy; the radiated photons are final-state particles, mostly along the beam,
  so the final state still sums to sqrt(s) in four-momentum while the detector sees less.
* Vertex smearing as in the cards: Gaussian beam spot σx = 27.3 µm, σy = 48.8 nm, σz = 1.33 mm
  (`Beams:allowVertexSpread`, values in mm). Impact parameters therefore measure the displacement from
  the beam line plus the spot size.
* `ParticleDecays:limitCylinder = on` with xyMax = 2250 mm and zMax = 2500 mm, as in the cards: a
  long-lived particle decays in the generator only inside the tracker+calorimeter cylinder.
* No beam-energy spread: the cards leave `Beams:allowMomentumSpread` at Pythia's default (off), and CLIC's
  luminosity spectrum (beamstrahlung) is not in them either; matching the anchors wins over adding it.
* Long-lived particles decay in the generator with Pythia's default stability rules: pi+-, K+-, K0L,
  muons, (anti)protons and (anti)neutrons are stable; K0S, Lambda, Sigma, Xi, Omega, charm and bottom
  hadrons and taus decay, at their proper-lifetime-sampled vertices (in mm). The detector simulation then
  sees their charged decay products as displaced tracks, which is what the impact parameters and the
  innermost-hit radius are for.

The pp processes at the LHC (`PP_PROCESSES`, proton beams, 14 TeV in the jet datasets) exist to give
boosted, labelled large-radius jets. Each is a 2 → 2 hard process with a p̂T threshold
(`PhaseSpace:pTHatMin`), so that the resonance recoils with pT ≈ p̂T and its decay products fall into one
R = 0.8 jet; the threshold and multiparton interactions are options of the sample (`pp_option_settings`):

* `pp_ttbar_had`: gg, qq̄ → tt̄, both W forced to quarks (t → b q q̄').
* `pp_wz_qq`: qq̄' → W±Z (Standard Model), W → q q̄' and Z → q q̄ (d, u, s, c, b): two boosted vector-boson
  jets per event without a new-physics mass to choose.
* `pp_h_bb`, `pp_h_cc`, `pp_h_gg`: qq̄ → Z H with Z → νν̄, H forced to bb̄ / cc̄ / gg: one boosted Higgs jet
  recoiling against missing pT, so no second resonance competes for the jet (the H branching ratio
  only scales the cross-section, which the jet datasets do not use).
* `pp_qcd`: every QCD 2 → 2 process (`HardQCD:all`), the background.
* `pp_minbias`: inelastic non-diffractive soft QCD (`SoftQCD:nonDiffractive`), the minimum-bias events
  of a Delphes pile-up file.

Multiparton interactions are on by default (the physical choice); `mpi: false` switches them off, which
makes QCD events roughly four times faster to generate (≈ 80 → 330 events/s at p̂T > 500 GeV) at the
price of no underlying event in the jets. Beam remnants, ISR and FSR stay on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Every quark flavour a gamma*/Z or W may decay to at 380 GeV (top is kinematically closed for these).
_LIGHT_AND_HEAVY_QUARKS: Final = "1 2 3 4 5"

PROCESSES: Final[dict[str, tuple[str, ...]]] = {
    # e+e- -> gamma*/Z -> t tbar, inclusive top and W decays.
    "ee_ttbar": ("Top:ffbar2ttbar(s:gmZ) = on",),
    # e+e- -> gamma*/Z -> q qbar (d, u, s, c, b); the Z decay table also steers the gamma* flavours.
    "ee_qq": (
        "WeakSingleBoson:ffbar2gmZ = on",
        "23:onMode = off",
        f"23:onIfAny = {_LIGHT_AND_HEAVY_QUARKS}",
    ),
    # e+e- -> W+ W-, both W decaying hadronically.
    "ee_ww_fullhad": (
        "WeakDoubleBoson:ffbar2WW = on",
        "24:onMode = off",
        f"24:onIfAny = {_LIGHT_AND_HEAVY_QUARKS}",
    ),
}

# Quarks a W or Z is forced to in the pp samples (no top).
_PP_QUARKS: Final = "1 2 3 4 5"

PP_PROCESSES: Final[dict[str, tuple[str, ...]]] = {
    "pp_ttbar_had": (
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
        "24:onMode = off",
        f"24:onIfAny = {_PP_QUARKS}",
    ),
    "pp_wz_qq": (
        "WeakDoubleBoson:ffbar2ZW = on",
        "23:onMode = off",
        f"23:onIfAny = {_PP_QUARKS}",
        "24:onMode = off",
        f"24:onIfAny = {_PP_QUARKS}",
    ),
    "pp_h_bb": (
        "HiggsSM:ffbar2HZ = on",
        "23:onMode = off",
        "23:onIfAny = 12 14 16",
        "25:onMode = off",
        "25:onIfMatch = 5 -5",
    ),
    "pp_h_cc": (
        "HiggsSM:ffbar2HZ = on",
        "23:onMode = off",
        "23:onIfAny = 12 14 16",
        "25:onMode = off",
        "25:onIfMatch = 4 -4",
    ),
    "pp_h_gg": (
        "HiggsSM:ffbar2HZ = on",
        "23:onMode = off",
        "23:onIfAny = 12 14 16",
        "25:onMode = off",
        "25:onIfMatch = 21 21",
    ),
    "pp_qcd": ("HardQCD:all = on",),
    # Minimum bias (inelastic non-diffractive), the events a Delphes pile-up file is made of
    # (`colliderflow pileup`); not a sample process of the jet datasets.
    "pp_minbias": ("SoftQCD:nonDiffractive = on",),
}

# p̂T threshold (GeV) of each pp process when the sample does not set `pthat_min`: the resonance (or the
# parton) then carries pT ≳ 400–500 GeV, where its decay fits into an R = 0.8 jet.
PP_DEFAULT_PTHAT_MIN: Final[dict[str, float]] = {
    "pp_ttbar_had": 400.0,
    "pp_wz_qq": 400.0,
    "pp_h_bb": 400.0,
    "pp_h_cc": 400.0,
    "pp_h_gg": 400.0,
    "pp_qcd": 500.0,
    "pp_minbias": 0.0,  # no hard process: the threshold does not apply to SoftQCD
}
PP_OPTION_KEYS: Final = ("pthat_min", "mpi")

# The resonances whose decay products label a jet (jet_labels: X, and the Ys X decays through), per pp
# process: the truth a jet ntuplizer needs follows from the physics of the sample, not from a global
# setting. QCD has none, so its jets take QCD_* labels from their quark content.
PP_JET_RESONANCES: Final[dict[str, dict[str, list[int]]]] = {
    "pp_ttbar_had": {"res_x_pdgids": [6], "res_y_pdgids": [24]},
    "pp_wz_qq": {"res_x_pdgids": [23, 24], "res_y_pdgids": []},
    "pp_h_bb": {"res_x_pdgids": [25], "res_y_pdgids": []},
    "pp_h_cc": {"res_x_pdgids": [25], "res_y_pdgids": []},
    "pp_h_gg": {"res_x_pdgids": [25], "res_y_pdgids": []},
    "pp_qcd": {"res_x_pdgids": [], "res_y_pdgids": []},
}

# Electron (id 11) on positron (id -11); proton (2212) on proton.
_ELECTRON_PDGID: Final = 11
_PROTON_PDGID: Final = 2212


def is_pp(process: str) -> bool:
    """Whether `process` collides protons (and so needs pp beams and takes pp options)."""
    return process in PP_PROCESSES


def process_settings(process: str) -> tuple[str, ...]:
    """The Pythia strings that select `process`; ValueError listing the known names otherwise."""
    try:
        return PROCESSES[process] if process in PROCESSES else PP_PROCESSES[process]
    except KeyError:
        known = ", ".join(sorted([*PROCESSES, *PP_PROCESSES]))
        raise ValueError(f"unknown process {process!r} for the builtin backend; known: {known}") from None


def pp_beam_settings(sqrt_s: float) -> tuple[str, ...]:
    """Pythia strings for proton-proton beams at centre-of-mass energy `sqrt_s` (GeV)."""
    return (
        f"Beams:idA = {_PROTON_PDGID}",
        f"Beams:idB = {_PROTON_PDGID}",
        f"Beams:eCM = {sqrt_s!r}",
    )


def pp_option_settings(process: str, options: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Pythia strings for the sample options of a pp process: p̂T threshold (GeV) and MPI on/off.

    Options are checked here, where their meaning is known: an unknown key or a wrong type is a
    ValueError naming it, because a silently ignored threshold would change the dataset.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(PP_OPTION_KEYS))
    if unknown:
        raise ValueError(f"process {process!r}: unknown option(s) {unknown}; known: {list(PP_OPTION_KEYS)}")
    pthat = options.get("pthat_min", PP_DEFAULT_PTHAT_MIN[process])
    if isinstance(pthat, bool) or not isinstance(pthat, (int, float)) or not 0 <= pthat < float("inf"):
        raise ValueError(f"process {process!r}: pthat_min must be a number of GeV >= 0, got {pthat!r}")
    mpi = options.get("mpi", True)
    if not isinstance(mpi, bool):
        raise ValueError(f"process {process!r}: mpi must be true or false, got {mpi!r}")  # noqa: TRY004
    return (f"PhaseSpace:pTHatMin = {float(pthat)!r}", f"PartonLevel:MPI = {'on' if mpi else 'off'}")


def run_settings(process: str, sqrt_s: float, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """Beams, process and options of one run, in the order Pythia is given them.

    The e+e- processes take no options and get the CLIC beams of `beam_settings`; pp processes get
    proton beams and their options.
    """
    if not is_pp(process):
        if options:
            raise ValueError(f"process {process!r} takes no options, got {sorted(options)}")
        return (*beam_settings(sqrt_s), *process_settings(process))
    return (*pp_beam_settings(sqrt_s), *process_settings(process), *pp_option_settings(process, options))


# The beam spot of key4hep-sim's CLIC 380 GeV cards (mm), and the decay cylinder (mm) of the same cards.
CLIC_VERTEX_SIGMA_MM: Final = {"X": 2.73e-2, "Y": 48.8e-6, "Z": 1.33}
CLIC_DECAY_CYLINDER_MM: Final = {"xyMax": 2250.0, "zMax": 2500.0}


def beam_settings(sqrt_s: float) -> tuple[str, ...]:
    """Pythia strings for e- e+ beams at `sqrt_s` (GeV) as key4hep-sim's CLIC cards set them (module doc)."""
    return (
        f"Beams:idA = {_ELECTRON_PDGID}",
        f"Beams:idB = {-_ELECTRON_PDGID}",
        f"Beams:eCM = {sqrt_s!r}",
        "PDF:lepton = on",
        "PartonLevel:ISR = on",
        "PartonLevel:FSR = on",
        "Beams:allowVertexSpread = on",
        *(f"Beams:sigmaVertex{axis} = {sigma!r}" for axis, sigma in CLIC_VERTEX_SIGMA_MM.items()),
        "ParticleDecays:limitCylinder = on",
        *(f"ParticleDecays:{name} = {value!r}" for name, value in CLIC_DECAY_CYLINDER_MM.items()),
    )


def quiet_settings() -> tuple[str, ...]:
    """Silence the banner, the per-event counter and the statistics listing of a batch job."""
    return ("Print:quiet = on", "Next:numberCount = 0", "Init:showChangedSettings = off")


def seed_settings(seed: int) -> tuple[str, ...]:
    """Pythia strings that fix its random stream to `seed` (Pythia accepts 0..900_000_000)."""
    return ("Random:setSeed = on", f"Random:seed = {seed}")
