"""Register stage: a run that passed the gate becomes a model version and the production model."""
