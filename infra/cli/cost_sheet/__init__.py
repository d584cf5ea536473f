"""The cost sheet (`mlops cost`): what a stack costs, from its synthesized template (counts,
memory sizes, schedules, retention), its config (rates), the figures `make bench` measured
(`bench/cost_inputs.json`) and the list prices in `prices.toml`. No AWS calls."""
