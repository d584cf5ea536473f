"""The predict function: the serving API (v1 and Open Inference Protocol v2), feedback, rollouts."""
