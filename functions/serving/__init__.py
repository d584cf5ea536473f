"""What the predict API and batch scoring share: a registered version loaded for scoring
(`model`), and request values checked against its signature (`features`, `values`, the bodies of
`body`, `instances` and `tensors`, and the `errors` they raise). Pure apart from `model`, which
reads the registry and the model file through the callables it is given."""
