"""Evaluation: predictions of a trained model over a split (predict), then metrics and plots."""
