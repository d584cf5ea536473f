"""Safe rollout of alias `candidate`, as the predict function sees it: a share of requests is
served by the candidate (`[serving] candidate_share`), and every captured request carries the
rollout it was served under (`ModelStore.rollout`: the candidate alias's revision), on
production's answers and the candidate's alike.

Predict counts nothing and judges nothing: the canary function (`functions.canary`) counts the
capture records and decides with a sequential test, off the request path.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.common.config.serving_view import ServingSettings


@dataclass(frozen=True)
class RolloutPolicy:
    """How much traffic a candidate gets (`[serving] candidate_share`)."""

    share: float = 0.0

    @classmethod
    def from_serving(cls, serving: ServingSettings) -> RolloutPolicy:
        return cls(share=serving.candidate_share)

    @property
    def active(self) -> bool:
        return self.share > 0
