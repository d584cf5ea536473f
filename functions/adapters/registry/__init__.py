"""The registry table's model side, by concern: `runs`, `versions`, `aliases` (with their
history), `rollouts` (serving stats and decisions), the items they share (`items`), and
`model_registry`, one object over all of them."""
