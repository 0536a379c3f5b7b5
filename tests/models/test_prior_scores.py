"""`prior_scores`: the prior q of the solve mixes in the content anomaly at ``ranking.content_prior``
(a mutation audit found nothing that failed when the option was ignored; its default is 0)."""

import numpy as np

from car.models.car_module import prior_scores


def test_content_prior_mixes_the_rank_normalised_content_anomaly_into_q():
    prior, content = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    alone = prior_scores(prior, content, 0.0)
    np.testing.assert_allclose(alone, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(prior_scores(prior, None, 1.0), alone)
    # content percentiles [1, 0, 0.5, 0.25, 0.75]; weight 1: their mean with the prior's, weight 3: (q + 3 c) / 4
    np.testing.assert_allclose(prior_scores(prior, content, 1.0), [0.5, 0.125, 0.5, 0.5, 0.875])
    np.testing.assert_allclose(prior_scores(prior, content, 3.0), [0.75, 0.0625, 0.5, 0.375, 0.8125])
