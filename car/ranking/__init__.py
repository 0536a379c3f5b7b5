"""Ranking of alerts and patterns from their dependency scores (reference: ../shared/docs/method.md section 4)."""

from car.ranking.collaborative import (
    RankingGraph,
    RankingParams,
    RankingResult,
    build_graph,
    collaborative_rank,
    objective,
)

__all__ = [
    "RankingGraph",
    "RankingParams",
    "RankingResult",
    "build_graph",
    "collaborative_rank",
    "objective",
]
