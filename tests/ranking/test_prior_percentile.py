"""`percentile`, the rank normalisation of the prior q: ties share their mean rank (a mutation audit
found nothing that failed when ties took their lowest rank)."""

import numpy as np

from car.ranking.prior import percentile


def test_percentile_gives_ties_their_mid_rank_in_zero_one():
    x = np.array([3.0, 1.0, 1.0, 2.0, 1.0])
    # ranks 0..4: the three 1.0 share ranks 0, 1, 2 (mean 1), 2.0 is rank 3, 3.0 is rank 4; / (n - 1)
    np.testing.assert_allclose(percentile(x), [1.0, 0.25, 0.25, 0.75, 0.25])
    np.testing.assert_allclose(percentile(np.array([5.0, 5.0])), [0.5, 0.5])
    assert percentile(np.array([7.0])).tolist() == [1.0]
