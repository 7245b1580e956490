"""Simulation files → training data.

Event-level (MLPF) datasets: `events.ntuplize_files` (ROOT → one Parquet shard of PF elements, truth
targets and a rule-based baseline) and `validate.validate_dataset` (a sample's shards → checks, summary
and plot). The array kernels behind them: `elements` (features and the flat element layout),
`targets` (truth → one target per element), `baseline` (rule-based particle flow → one candidate per
element), `pairs` (nearest-neighbour search within events).

Jet-level (JetClass-II) datasets live in `jets`, `jet_labels` and `jet_substructure`.
"""
