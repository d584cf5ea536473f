"""A worked example of `[model] factory`: the churn model with an engineered feature.

`churn_model.pipeline:build` is the factory; `churn_model.ratio` holds the custom transformer
that computes the feature, with its ONNX converter registered with skl2onnx on import.
"""
