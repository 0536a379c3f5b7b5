"""The order in which patterns are shown: by score, or by score and the new steps each adds.

Patterns found by the breadth-first search overlap: ``A > B``, ``A > B > C`` and ``B > C`` often
all score high, and a top five made of them shows one attack stage five times. With
``diversity: steps`` the patterns are ranked greedily: each position takes the pattern with
the highest ``score x novelty``, novelty being the share of its distinct step types that no
higher-ranked pattern holds (maximal marginal relevance with the step types as the
redundancy measure). The scores themselves do not change. A pattern without an occurrence
among the ranked alerts (its support counted elsewhere) comes last in either order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIVERSITY = ("steps", "none")


def pattern_order(scores: np.ndarray, steps: Sequence[Sequence[int]], diversity: str = "steps",
                  occurrences: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rank order of L patterns and the novelty of each where it was placed.

    scores: (L,) higher = more important; steps: each pattern's step types (codes);
    occurrences: (L,) occurrences among the ranked alerts, if known: patterns with none (found in
    the history only) come after every pattern that occurs. Returns ``order`` (L,) pattern
    indices, best first, and ``novelty`` (L,) per pattern in [0, 1] (all 1 with
    ``diversity="none"``, the order by score alone). Ties keep the lower index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if diversity not in DIVERSITY:
        raise ValueError(f"diversity={diversity!r}: use one of {', '.join(DIVERSITY)}")
    occurs = np.ones(len(scores), dtype=bool) if occurrences is None else np.asarray(occurrences) > 0
    novelty = np.ones(len(scores))
    if diversity == "none":
        return np.lexsort((np.arange(len(scores)), -scores, ~occurs)), novelty
    # Score x novelty needs scores >= 0: shift so that the lowest score is 0.
    weight = scores - scores.min(initial=0.0)
    types = [set(int(s) for s in pattern) for pattern in steps]
    shown: set[int] = set()
    order = []
    for left in (list(np.flatnonzero(occurs)), list(np.flatnonzero(~occurs))):
        while left:
            share = np.array([len(types[i] - shown) / len(types[i]) for i in left])
            key = weight[left] * share
            # Among equal keys (e.g. every remaining pattern fully shown already) the higher score first.
            best = max(range(len(left)), key=lambda j: (key[j], scores[left[j]], -left[j]))
            chosen = left.pop(best)
            novelty[chosen] = share[best]
            order.append(chosen)
            shown |= types[chosen]
    return np.array(order, dtype=np.int64), novelty
