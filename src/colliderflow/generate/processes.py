"""Pythia settings for the e+e- processes the builtin backend knows, and for the beams they share.

The process catalogue lives here, apart from the driver, so that adding a process is one entry and the
provenance of a sample can quote exactly the strings Pythia was given.

Beam choices, applied to every process:

* `PDF:lepton = off`: the beam leptons carry the full beam energy. There is no initial-state photon
  radiation and no beamstrahlung, so the visible + invisible final state sums to exactly sqrt(s). This is
  a simplification of CLIC (whose luminosity spectrum has a long tail) that makes the truth energy sum a
  usable check and keeps the event kinematics easy to reason about; final-state radiation stays on.
* No beam-spot spread: every primary vertex sits at the origin, so impact parameters measure only the
  displacement from decays of long-lived particles.
* Long-lived particles decay in the generator with Pythia's default stability rules: pi+-, K+-, K0L,
  muons, (anti)protons and (anti)neutrons are stable; K0S, Lambda, Sigma, Xi, Omega, charm and bottom
  hadrons and taus decay, at their proper-lifetime-sampled vertices (in mm). The detector simulation then
  sees their charged decay products as displaced tracks, which is what the impact parameters and the
  innermost-hit radius are for.
"""

from __future__ import annotations

from typing import Final

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

# Electron (id 11) on positron (id -11).
_ELECTRON_PDGID: Final = 11


def process_settings(process: str) -> tuple[str, ...]:
    """The Pythia strings that select `process`; ValueError listing the known names otherwise."""
    try:
        return PROCESSES[process]
    except KeyError:
        raise ValueError(
            f"unknown process {process!r} for the builtin backend; known: {', '.join(sorted(PROCESSES))}"
        ) from None


def beam_settings(sqrt_s: float) -> tuple[str, ...]:
    """Pythia strings for e- e+ beams at centre-of-mass energy `sqrt_s` (GeV), without ISR (see module doc)."""
    return (
        f"Beams:idA = {_ELECTRON_PDGID}",
        f"Beams:idB = {-_ELECTRON_PDGID}",
        f"Beams:eCM = {sqrt_s!r}",
        "PDF:lepton = off",
    )


def quiet_settings() -> tuple[str, ...]:
    """Silence the banner, the per-event counter and the statistics listing of a batch job."""
    return ("Print:quiet = on", "Next:numberCount = 0", "Init:showChangedSettings = off")


def seed_settings(seed: int) -> tuple[str, ...]:
    """Pythia strings that fix its random stream to `seed` (Pythia accepts 0..900_000_000)."""
    return ("Random:setSeed = on", f"Random:seed = {seed}")
