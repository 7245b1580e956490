"""The CLIC-like detector model: geometry and resolutions as one frozen, named set of numbers.

The numbers follow the CLICdet design (CLICdp-Note-2017-001) closely enough to give CLIC-like features:
a 4 T solenoid, a silicon vertex detector from 31 mm, a silicon tracker to 1.486 m, the ECAL face at
1.5 m in the barrel and |z| = 2.307 m in the endcaps. Every tunable of the parametric simulation lives
here, so that a study can change one number by building a modified config instead of editing code.
Lengths in mm, energies and momenta in GeV, times in ns, angles in radians.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrackerConfig:
    """Silicon tracker: acceptance, hit surfaces, efficiency and resolutions."""

    # Acceptance: |cos(theta)| below this (theta from ~8 to ~172 degrees) and pT above pt_min_gev.
    cos_theta_max: float = 0.99
    pt_min_gev: float = 0.1
    # Fewest measured hits for a track to be found (a helix needs 5 parameters).
    min_hits: int = 4
    # Measurement surfaces. Barrel layers as (radius, half-length in z); disks as (|z|, r_min, r_max).
    barrel_layers_mm: tuple[tuple[float, float], ...] = (
        (31.0, 130.0),
        (44.0, 130.0),
        (58.0, 130.0),  # vertex detector
        (127.0, 482.0),
        (340.0, 482.0),
        (554.0, 692.0),  # inner tracker
        (819.0, 1264.0),
        (1153.0, 1264.0),
        (1486.0, 1264.0),  # outer tracker
    )
    disks_mm: tuple[tuple[float, float, float], ...] = (
        (160.0, 33.0, 102.0),
        (230.0, 33.0, 102.0),
        (300.0, 33.0, 102.0),  # vertex endcaps
        (524.0, 70.0, 554.0),
        (808.0, 100.0, 554.0),
        (1093.0, 130.0, 554.0),  # inner tracker endcaps
        (1310.0, 160.0, 1430.0),
        (1617.0, 190.0, 1430.0),
        (1883.0, 225.0, 1430.0),
        (2190.0, 260.0, 1430.0),
    )
    # A particle made outside this volume (r, |z|) leaves no track.
    outer_radius_mm: float = 1486.0
    half_length_mm: float = 2190.0
    # Efficiency: plateau, minus a drop that fades with pT above the threshold (scale in GeV).
    efficiency_plateau: float = 0.98
    efficiency_low_pt_drop: float = 0.12
    efficiency_low_pt_scale_gev: float = 0.3
    # Tracks of particles made beyond the vertex detector are harder to find.
    displaced_radius_mm: float = 60.0
    displaced_efficiency_factor: float = 0.9
    # sigma(1/pT) = a (+) b / (pT sin(theta)), in 1/GeV (b dimensionless): the point-resolution and
    # multiple-scattering terms.
    inv_pt_resolution_const: float = 2e-5
    inv_pt_resolution_ms: float = 1e-3
    # Angular resolution sigma(phi), sigma(theta) = a (+) b / (p sqrt(sin(theta))), rad and rad GeV.
    angle_resolution_const: float = 2e-5
    angle_resolution_ms: float = 1e-3
    # Impact parameters: sigma(d0) = a (+) b / (p sin(theta)^1.5), sigma(z0) = a (+) b / (p sin(theta)^2.5),
    # in mm and mm GeV (CLIC: 5 um (+) 15 um GeV).
    impact_resolution_const_mm: float = 0.005
    impact_resolution_ms_mm: float = 0.015
    # Track time resolution.
    time_resolution_ns: float = 0.1
    # dE/dx: most probable energy loss of a minimum-ionising particle in silicon, GeV/mm, and the relative
    # resolution of the truncated mean over the track's hits.
    dedx_mip_gev_per_mm: float = 2.7e-4
    dedx_relative_resolution: float = 0.07
    # Fake tracks (generate/fakes.py): mean number per real track, their pT scale above pt_min_gev (GeV),
    # the spread of their impact parameters (mm) and the factor on their chi2. The CLICdet tracking
    # studies (arXiv:1812.07337) find fake rates at or below the per-cent level in tt̄ events; 1 % is taken.
    fake_tracks_per_track: float = 0.01
    fake_pt_scale_gev: float = 0.5
    fake_impact_sigma_mm: float = 1.0
    fake_chi2_scale: float = 3.0
    # Material between the beam and the ECAL face (beam pipe, vertex detector, tracker, supports, cables),
    # spread uniformly over radii material_inner_radius_mm..outer_radius_mm inside |z| < half_length_mm:
    # x/X0 and x/lambda_I at normal incidence (docs/detector.md, "Secondaries in the tracker").
    material_inner_radius_mm: float = 29.0
    material_radiation_lengths: float = 0.12
    material_interaction_lengths: float = 0.035
    # Nuclear interactions: transverse momentum (GeV, Gaussian sigma per axis) the two secondaries get
    # relative to the primary's direction.
    nuclear_kick_gev: float = 0.3


@dataclass(frozen=True)
class CalorimeterConfig:
    """ECAL + HCAL: where showers start, how energies are smeared and how deposits merge into clusters."""

    # Front face of the ECAL: barrel cylinder and endcap planes; the endcap hole is the beam pipe region.
    ecal_barrel_radius_mm: float = 1500.0
    ecal_endcap_z_mm: float = 2307.0
    ecal_endcap_inner_radius_mm: float = 260.0
    # Stochastic and constant terms, sigma/E = a/sqrt(E) (+) c.
    em_stochastic: float = 0.15
    em_constant: float = 0.01
    hadron_stochastic: float = 0.50
    hadron_constant: float = 0.05
    # Depths (CLICdet, CLICdp-Note-2017-001): the ECAL is 40 Si-W layers, 202 mm, 22 X0 and about 1 lambda_I;
    # the HCAL starts 38 mm behind it (barrel 1740 mm) and is 60 steel-scintillator layers, 1590 mm,
    # 7.5 lambda_I; its effective radiation length (19 mm steel per 26.5 mm layer) is about 24.5 mm.
    ecal_thickness_mm: float = 202.0
    ecal_radiation_lengths: float = 22.0
    ecal_interaction_lengths: float = 1.0
    ecal_hcal_gap_mm: float = 38.0
    hcal_thickness_mm: float = 1590.0
    hcal_interaction_lengths: float = 7.5
    hcal_radiation_length_mm: float = 24.5
    # Electromagnetic showers: critical energy of tungsten (GeV), the longitudinal Gamma profile's
    # b parameter (PDG), the log-normal per-shower fluctuation of its maximum, and the effective
    # Molière radius of the sampling ECAL (mm; 90 % of the energy inside it).
    em_critical_energy_gev: float = 0.00797
    em_profile_b: float = 0.5
    em_tmax_log_fluctuation: float = 0.2
    ecal_moliere_radius_mm: float = 24.0
    # Hadron showers: the first interaction is exponential in lambda_I; the electromagnetic fraction
    # follows Groom's power law 1 - (E / e0)^(k - 1) with a Gaussian spread; the hadronic part's
    # longitudinal Gamma profile has scale `hadron_profile_scale` lambda_I and its maximum
    # 0.2 ln(E / GeV) + 0.7 lambda_I behind the start (PDG); 90 % of it lies within
    # `hadron_lateral_radius_mm` of the axis.
    hadron_em_fraction_e0_gev: float = 1.0
    hadron_em_fraction_k: float = 0.82
    hadron_em_fraction_spread: float = 0.1
    hadron_profile_scale: float = 0.8
    hadron_lateral_radius_mm: float = 200.0
    # Energy-carrying points sampled per shower: electromagnetic, the electromagnetic part of a hadron
    # shower, its hadronic part; their energies are Gamma-distributed with these shapes (fewer, more
    # unequal points: larger fluctuations of the shower shape; integer shapes, drawn as -log of a product of
    # uniforms).
    em_spots: int = 5
    hadron_em_spots: int = 2
    hadron_spots: int = 6
    em_spot_shape: int = 3
    hadron_spot_shape: int = 1
    # Minimum-ionising deposits (charged hadrons that pass the ECAL, muons), GeV, and their log-normal width.
    mip_ecal_gev: float = 0.02
    mip_hcal_gev: float = 0.30
    mip_log_width: float = 0.25
    # Cells and clustering (cells.py): CLICdet's ECAL cells are 5.1 x 5.1 mm², its HCAL tiles 30 x 30 mm²
    # (arXiv:1812.07337). A fragment occupies a box of cells around its centroid's cell: an EM-like fragment
    # +- `em_core_cells` ECAL cells, a hadron shower core +- `hadron_core_cells` HCAL cells, a satellite
    # fragment its one HCAL cell; fragments whose boxes touch (nearest neighbours) form one cluster.
    ecal_cell_mm: float = 5.1
    hcal_cell_mm: float = 30.0
    em_core_cells: int = 1
    hadron_core_cells: int = 1
    # Hadronic points beyond this distance from the shower axis are satellite fragments of their own.
    hadron_fragment_radius_mm: float = 300.0
    # Electronic noise (noise.py): cells, Gaussian noise per cell (in MIP) and the GeV of one MIP hit.
    ecal_cells: float = 6.6e7
    hcal_cells: float = 4.8e6
    ecal_noise_mip: float = 0.1
    hcal_noise_mip: float = 0.15
    ecal_mip_gev: float = 0.0005
    hcal_mip_gev: float = 0.005
    hit_threshold_mip: float = 0.5
    # Scatter of a shower axis' impact point (which decides its cell) around the particle's.
    em_position_resolution_mm: float = 2.0
    hadron_position_resolution_mm: float = 10.0
    # Spread of the shower-axis polar angle around the particle's direction (rad).
    em_itheta_resolution: float = 0.01
    hadron_itheta_resolution: float = 0.05
    # Mean number of calorimeter hits per GeV deposited.
    ecal_hits_per_gev: float = 40.0
    hcal_hits_per_gev: float = 15.0
    # Clusters below this energy are not reconstructed.
    cluster_energy_min_gev: float = 0.1


@dataclass(frozen=True)
class DetectorConfig:
    """A whole parametric detector: the solenoid field plus tracker and calorimeter models."""

    name: str = "clic_like"
    b_field_t: float = 4.0  # along +z
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    calorimeter: CalorimeterConfig = field(default_factory=CalorimeterConfig)


DETECTORS: dict[str, DetectorConfig] = {"clic_like": DetectorConfig()}


def detector_config(name: str) -> DetectorConfig:
    """The detector model called `name`; ValueError listing the known ones otherwise."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}") from None
