"""The data contracts between stages, in one place.

Every stage reads only files written by the stages before it, through the names defined here. A change
to a layout is a change to this module (and to docs/schema.md), never a private convention inside a
stage. Units: GeV for energies and momenta, mm for lengths, ns for times, radians for angles.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------------------
# Simulation output of the builtin backend: one ROOT file per (sample, shard), one TTree.
# Jagged branches are per-event lists; the *_idx branches index into the gen_* lists of the same event.
# --------------------------------------------------------------------------------------------------
SIM_TREE: Final = "events"

SIM_EVENT_BRANCHES: Final = ("event_number", "event_weight")

# Final-state (stable, status=1) truth particles after the non-interacting → interacting-children rule.
SIM_GEN_BRANCHES: Final = (
    "gen_pdgid",  # int32
    "gen_charge",  # float32, units of e
    "gen_px",
    "gen_py",
    "gen_pz",
    "gen_energy",
    "gen_mass",  # float32, GeV
    "gen_status",  # int32 (1 = final state)
    "gen_vx",
    "gen_vy",
    "gen_vz",  # float32, production vertex, mm
)

# Reconstructed tracks; helix parameters as EDM4hep's TrackState stores them (B along +z).
SIM_TRACK_BRANCHES: Final = (
    "track_gen_idx",  # int32, index of the truth particle that made the track
    "track_charge",  # float32
    "track_omega",  # float32, signed curvature, 1/mm
    "track_tanlambda",  # float32
    "track_phi",  # float32, azimuth at the point of closest approach, rad
    "track_d0",  # float32, mm
    "track_z0",  # float32, mm
    "track_chi2",  # float32
    "track_ndf",  # int32
    "track_dedx",  # float32
    "track_dedx_error",  # float32
    "track_radius_innermost_hit",  # float32, mm
    "track_time",  # float32, ns
)

# Calorimeter clusters.
SIM_CLUSTER_BRANCHES: Final = (
    "cluster_energy",  # float32, GeV (ECAL + HCAL + other)
    "cluster_x",
    "cluster_y",
    "cluster_z",  # float32, mm, energy-weighted position
    "cluster_itheta",  # float32, intrinsic polar direction, rad
    "cluster_energy_ecal",
    "cluster_energy_hcal",
    "cluster_energy_other",  # float32, GeV
    "cluster_nhits",  # int32
    "cluster_sigma_x",
    "cluster_sigma_y",
    "cluster_sigma_z",  # float32, mm, energy-weighted spread
)

# Truth → cluster energy contributions (one entry per (cluster, particle) pair with a deposit).
SIM_CALOLINK_BRANCHES: Final = (
    "calolink_cluster_idx",  # int32
    "calolink_gen_idx",  # int32
    "calolink_energy",  # float32, GeV deposited by the particle in the cluster
)

SIM_ALL_BRANCHES: Final = (
    SIM_EVENT_BRANCHES + SIM_GEN_BRANCHES + SIM_TRACK_BRANCHES + SIM_CLUSTER_BRANCHES + SIM_CALOLINK_BRANCHES
)

# The hard-process truth record (builtin Pythia files made for jets): the decay chains jet labels follow.
# Written by generate.pythia.hard_process, read by ntuplize.builtin_jets.
HARD_BRANCHES: Final = (
    "hard_pdgid",  # int32
    "hard_status",  # int32, Pythia status
    "hard_px",
    "hard_py",
    "hard_pz",
    "hard_energy",
    "hard_mass",  # float32, GeV
    "hard_mother1",  # int32, index in the event's hard_ list of the first mother, -1 if not stored
    "hard_d1",
    "hard_d2",  # int32, daughters in the event's hard_ list (GenRecord convention), -1 for none
)

# --------------------------------------------------------------------------------------------------
# Particle-flow elements: tracks first, then clusters, in one [N, 17] float32 matrix per event
# (particleflow's CLIC order). Column 0 is the element type.
# --------------------------------------------------------------------------------------------------
ELEM_TYPE_TRACK: Final = 1
ELEM_TYPE_CLUSTER: Final = 2

TRACK_FEATURES: Final = (
    "elemtype",
    "pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "p",
    "chi2",
    "ndf",
    "dEdx",
    "dEdxError",
    "radiusOfInnermostHit",
    "tanLambda",
    "D0",
    "omega",
    "Z0",
    "time",
    "pad",
)
CLUSTER_FEATURES: Final = (
    "elemtype",
    "et",
    "eta",
    "sin_phi",
    "cos_phi",
    "energy",
    "position.x",
    "position.y",
    "position.z",
    "iTheta",
    "energy_ecal",
    "energy_hcal",
    "energy_other",
    "num_hits",
    "sigma_x",
    "sigma_y",
    "sigma_z",
)
N_ELEM_FEATURES: Final = 17
assert len(TRACK_FEATURES) == len(CLUSTER_FEATURES) == N_ELEM_FEATURES

# --------------------------------------------------------------------------------------------------
# Per-element particle blocks: the target (truth), the rule-based baseline candidate, the prediction.
# cls_id 0 means "no particle for this element".
# --------------------------------------------------------------------------------------------------
PARTICLE_FEATURES: Final = ("cls_id", "charge", "pt", "eta", "sin_phi", "cos_phi", "energy", "jet_idx")
N_PARTICLE_FEATURES: Final = len(PARTICLE_FEATURES)
PF = {name: i for i, name in enumerate(PARTICLE_FEATURES)}

CLASS_NAMES: Final = ("none", "charged_hadron", "neutral_hadron", "photon", "electron", "muon")
N_CLASSES: Final = len(CLASS_NAMES)

# Jets stored per event as [M, 4] rows of (pt, eta, phi, energy).
JET_FEATURES: Final = ("pt", "eta", "phi", "energy")

# --------------------------------------------------------------------------------------------------
# Event-level Parquet shard (ntuplize output): one row per event.
# --------------------------------------------------------------------------------------------------
EVENT_COLUMNS: Final = {
    "event_id": "int64, unique within the sample: shard * 2**32 + event index",
    "sample": "string",
    "split": "string: train | val | test (deterministic from event_id and the config seed)",
    "X": "list<[17] float32>: elements",
    "ytarget": "list<[8] float32>: target particle per element",
    "ycand": "list<[8] float32>: rule-based baseline candidate per element",
    "n_elements": "int32",
    "genmet": "float32, GeV, from all status=1 truth particles except neutrinos",
    "genjets": "list<[4] float32>: jets of status=1 truth particles (no neutrinos)",
    "targetjets": "list<[4] float32>: jets of the target particles",
    "gen_unassigned_energy": "float32, GeV of truth energy in acceptance (|cos θ| ≤ 0.99) reaching no element",
}

# The per-event (not per-element) columns: what a weights section may name as `vars` or `class_column`.
EVENT_SCALAR_COLUMNS: Final = tuple(name for name, kind in EVENT_COLUMNS.items() if not kind.startswith("list<"))

SPLITS: Final = ("train", "val", "test")

# --------------------------------------------------------------------------------------------------
# Evaluation input: predictions.parquet, one row per test event.
# --------------------------------------------------------------------------------------------------
PREDICTION_COLUMNS: Final = {
    "event_id": "int64",
    "sample": "string",
    "ytarget": "list<[8] float32>",
    "ycand": "list<[8] float32>",
    "ypred": "list<[8] float32>: model prediction per element, same layout as ytarget",
    "genmet": "float32",
    "genjets": "list<[4] float32>",
}

# The element → particle-class names used in plots and reports.
NEUTRINO_PDGIDS: Final = (12, 14, 16)
