"""The jet taggers' evaluation: predict (torch) → metrics (pure functions) → plots (figures only).

`run.evaluate_tagger` is the stage's entry point (`colliderflow evaluate-tagger`); `predict.predict_tagger` is
`colliderflow predict-tagger`.
"""
