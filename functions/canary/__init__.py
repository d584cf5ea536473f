"""The canary function: rollouts of alias `candidate` judged by a sequential test on counters
counted from the capture stream."""
