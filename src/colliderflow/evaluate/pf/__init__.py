"""The particle-flow model's evaluation: predict (torch) → metrics (pure functions) → plots (figures only).

`run.evaluate` is the stage's entry point (`colliderflow evaluate`); `predict.predict` is `colliderflow predict`.
"""
