"""Sampling weights that make chosen distributions flat per class and balance the classes (weaver-style).

`histogram` holds the pure computation, `files` the pipeline stage around it, `plots` its picture.
"""

from colliderflow.weights.files import compute_weights_from_files
from colliderflow.weights.histogram import ReweightResult, compute_reweight_maps, event_weights, reweight_events

__all__ = ["ReweightResult", "compute_reweight_maps", "compute_weights_from_files", "event_weights", "reweight_events"]
