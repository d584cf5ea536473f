"""The shadow scorer: alias `shadow`'s version scores the captured requests off the request
path (`[serving] shadow = true`); its records go under `shadow/<model>/`."""
