"""The parametric detector as one call: truth particles of a batch of events in, tracks and clusters out.

The simulation is vectorised over all particles of all events of a batch; randomness comes from one
numpy Generator whose stream is derived from the job seed (independent of Pythia's own stream), so a
shard is reproducible from its seed alone. Tracker and calorimeter models are in their own modules; the
numbers they use are in `geometry`. Secondaries made in the tracker material (`secondaries`) are tracked
and reach the calorimeter in place of the particle they came from; their tracks and deposits record
that truth particle (`secondary_links`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colliderflow.generate.calorimeter import simulate_calorimeter
from colliderflow.generate.fakes import fake_tracks, merge_tracks
from colliderflow.generate.geometry import DetectorConfig, detector_config
from colliderflow.generate.particles import GenParticles
from colliderflow.generate.records import Collection
from colliderflow.generate.secondaries import simulate_secondaries, surviving_with_secondaries
from colliderflow.generate.secondary_links import links_to_truth
from colliderflow.generate.tracker import particle_geometry, simulate_tracks

# Spawn key that separates the detector's random stream from any other stream made from the same seed.
_DETECTOR_STREAM = 0x0DE7EC70


@dataclass(frozen=True)
class DetectorResponse:
    """What the detector saw of a batch of events."""

    tracks: Collection
    clusters: Collection
    calolinks: Collection


def detector_rng(seed: int) -> np.random.Generator:
    """The detector simulation's random generator for a job seed."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(_DETECTOR_STREAM,)))


def simulate_detector(gen: GenParticles, detector: DetectorConfig | str, rng: np.random.Generator) -> DetectorResponse:
    """Tracks, clusters and cluster-truth links for every event of `gen`."""
    config = detector_config(detector) if isinstance(detector, str) else detector
    sec = simulate_secondaries(gen, config, rng)
    geometry, sec_geometry = particle_geometry(gen, config), particle_geometry(sec.particles, config)
    tracks = simulate_tracks(gen, config, rng, geometry, end_path=sec.end_path)
    sec_tracks = simulate_tracks(sec.particles, config, rng, sec_geometry,
                                 truth_index=sec.parent - gen.offsets[gen.event[sec.parent]])
    reaching, reaching_geometry, truth, is_secondary = surviving_with_secondaries(gen, sec, geometry, sec_geometry)
    clusters, links = simulate_calorimeter(reaching, config, rng, reaching_geometry)
    links = links_to_truth(links, reaching, truth, gen.offsets, is_secondary)
    # Per event: the particles' tracks, the secondaries', the fakes (one join of the many with the few).
    fakes = fake_tracks(tracks.counts + sec_tracks.counts, config, rng)
    tracks = merge_tracks(tracks, merge_tracks(sec_tracks, fakes))
    return DetectorResponse(tracks=tracks, clusters=clusters, calolinks=links)
