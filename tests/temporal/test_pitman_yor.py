import numpy as np
import pytest
import torch

from car.temporal import ContextTree, PitmanYorTree, histories

A, B, C = 0, 1, 2
ABABAC = np.array([A, B, A, B, A, C])


def markov_sequences(seed: int, n_seq: int, length: int, k: int = 12, alpha: float = 0.2):
    """Sequences of an order-2 Markov source with sparse transitions; returns (symbols, sequence)."""
    rng = np.random.default_rng(seed)
    trans = np.random.default_rng(123).dirichlet(np.full(k, alpha), size=(k, k))
    out = []
    for _ in range(n_seq):
        seq = list(rng.integers(0, k, 2))
        for _ in range(length - 2):
            seq.append(rng.choice(k, p=trans[seq[-2], seq[-1]]))
        out.append(seq)
    return np.concatenate(out), np.repeat(np.arange(n_seq), length)


def heldout_loglik(model, tree, symbols, sequence):
    with torch.no_grad():
        return torch.log(model.prob(tree, histories(symbols, sequence, tree.depth), symbols)).mean().item()


@pytest.mark.parametrize("prior", ["pitman_yor", "dirichlet", "ngram"])
def test_predictive_sums_to_one_at_every_node(prior):
    rng = np.random.default_rng(0)
    symbols, sequence = rng.integers(0, 6, 300), np.sort(rng.integers(0, 5, 300))
    tree = ContextTree.build(symbols, sequence, depth=3, n_symbols=6)
    theta_2 = -0.05 if prior == "pitman_yor" else 0.05  # theta > -d: negative only with a discount
    model = PitmanYorTree(3, prior=prior, discount=[0.1, 0.4, 0.7, 0.9], strength=[0.5, 2.0, theta_2, 3.0],
                          order=2)
    with torch.no_grad():
        for k in range(4):
            for context in tree.contexts(k):
                p = model.predict(tree, tuple(context))
                assert p.shape == (7,)
                assert (p > 0).all()
                assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
        # a context never seen backs off to its seen suffix
        assert model.predict(tree, (6, 6, 6)).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_dirichlet_matches_hand_computation():
    # a b a b a c, depth 1, K = 3 (+1 unseen slot, base 1/4), d = 0, theta_0 = 1, theta_1 = 2.
    # Counts: root a:3 b:2 c:1 (6); context a: b:2 c:1 (3); context b: a:2 (2).
    tree = ContextTree.build(ABABAC, np.zeros(6, dtype=int), depth=1, n_symbols=3)
    model = PitmanYorTree(1, prior="dirichlet", strength=[1.0, 2.0])
    with torch.no_grad():
        # P0(a) = (3 + 1/4)/7, P0(b) = (2 + 1/4)/7, P0(c) = (1 + 1/4)/7, P0(new) = (1/4)/7
        # P(a|a) = (0 + 2 P0(a))/5 = 0.1857143, P(b|a) = (2 + 2 P0(b))/5 = 0.5285714,
        # P(c|a) = (1 + 2 P0(c))/5 = 0.2714286, P(new|a) = 2 P0(new)/5 = 0.0142857
        assert model.predict(tree, (A,)).numpy() == pytest.approx(
            [0.1857143, 0.5285714, 0.2714286, 0.0142857], abs=1e-6)
        # leave-one-out, e.g. alert 1 (b after a): root without it b:1 of 5, P0(b) = 1.25/6;
        # context a without it b:1 of 2: (1 + 2 * 1.25/6)/4 = 0.3541667.
        # Alert 0 (a, no context): (2 + 1/4)/6 = 0.375. Alert 2 (a after b): context b a:1 of 1,
        # (1 + 2 * 0.375)/3 = 0.5833333. Alert 5 (c after a, its only c): root (0 + 1/4)/6,
        # context a (0 + 2 * 0.25/6)/4 = 0.0208333.
        loo = model.log_prob(tree, leave_one_out=True).exp().numpy()
        assert loo == pytest.approx([0.375, 0.3541667, 0.5833333, 0.3541667, 0.5833333, 0.0208333], abs=1e-6)
        # without leave-one-out, alert 1 gets P(b|a) above
        assert model.log_prob(tree, leave_one_out=False).exp()[1].item() == pytest.approx(0.5285714, abs=1e-6)


def test_pitman_yor_matches_hand_computation():
    # same tree, d = 0.5, theta_0 = 1, theta_1 = 2; tables t(u,s) = min(1, c(u,s)).
    # P0(b) = (2 - 0.5 + (1 + 0.5*3)/4)/7 = 2.125/7 = 0.3035714; P0(new) = 0.625/7 = 0.0892857
    # P(b|a) = (2 - 0.5 + (2 + 0.5*2) * P0(b))/5 = 0.4821429
    tree = ContextTree.build(ABABAC, np.zeros(6, dtype=int), depth=1, n_symbols=3)
    model = PitmanYorTree(1, discount=0.5, strength=[1.0, 2.0])
    with torch.no_grad():
        assert model.predict(tree, ()).numpy()[[B, 3]] == pytest.approx([0.3035714, 0.0892857], abs=1e-6)
        assert model.predict(tree, (A,))[B].item() == pytest.approx(0.4821429, abs=1e-6)
        # leave-one-out of alert 5 (its only c): root (0 + (1 + 0.5*2)/4)/6 = 1/12 (t(.) drops to 2),
        # context a (0 + (2 + 0.5*1)/12)/4 = 0.0520833 (t(a,.) drops to 1)
        assert model.log_prob(tree)[5].exp().item() == pytest.approx(0.0520833, abs=1e-6)


@pytest.mark.parametrize("prior", ["pitman_yor", "dirichlet"])
def test_leave_one_out_singleton_gets_unseen_probability(prior):
    # the only c is the last alert of its sequence, so removing it changes no other context
    symbols = np.array([A, B, A, B, A, B, A, C, B, A, B, A])
    sequence = np.array([0] * 8 + [1] * 4)
    tree = ContextTree.build(symbols, sequence, depth=2, n_symbols=3)
    keep = np.arange(12) != 7
    without = ContextTree.build(symbols[keep], sequence[keep], depth=2, n_symbols=3)
    model = PitmanYorTree(2, prior=prior, discount=0.3, strength=[1.0, 1.5, 0.8])
    with torch.no_grad():
        loo = model.log_prob(tree)[7].exp().item()
        unseen = model.predict(without, (B, A))
        assert loo == pytest.approx(unseen[3].item(), rel=1e-6)
        assert loo == pytest.approx(unseen[C].item(), rel=1e-6)
        assert loo < 0.1 < model.log_prob(tree, leave_one_out=False)[7].exp().item()
        assert model.surprise(tree)[7] == pytest.approx(-np.log(loo), rel=1e-6)


def test_loss_gradients_are_finite():
    symbols, sequence = markov_sequences(0, 5, 40)
    tree = ContextTree.build(symbols, sequence, depth=4)
    model = PitmanYorTree(4)
    model.loss(tree).backward()
    for p in model.parameters():
        assert torch.isfinite(p.grad).all() and (p.grad != 0).any()


def test_ngram_uses_only_its_order():
    # order-1 n-gram on a b a b a c: P(b|a) = (2 + theta_1 P0(b))/(theta_1 + 3) whatever came before a
    tree = ContextTree.build(ABABAC, np.zeros(6, dtype=int), depth=2, n_symbols=3)
    model = PitmanYorTree(2, prior="ngram", order=1, strength=[1.0, 2.0, 5.0])
    with torch.no_grad():
        assert model.predict(tree, (B, A))[B].item() == pytest.approx(0.5285714, abs=1e-6)
        assert model.discount().abs().sum().item() == 0


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError):
        PitmanYorTree(2, prior="kneser")
    with pytest.raises(ValueError):
        PitmanYorTree(2, discount=1.0)
    with pytest.raises(ValueError):
        PitmanYorTree(2, discount=0.5, strength=-0.6)
    with pytest.raises(ValueError):
        PitmanYorTree(2, prior="ngram", order=3)


def test_learned_parameters_beat_fixed_ones_on_heldout_data():
    train = markov_sequences(1, 30, 200)
    test = markov_sequences(2, 30, 200)
    tree = ContextTree.build(*train, depth=3, n_symbols=12)
    fitted = PitmanYorTree(3)
    losses = fitted.fit(tree, epochs=150, lr=0.1)
    assert losses[-1] < losses[0]
    learned = heldout_loglik(fitted, tree, *test)
    baselines = {
        "py d=0.5 theta=1": PitmanYorTree(3, discount=0.5, strength=1.0),
        "dirichlet theta=1": PitmanYorTree(3, prior="dirichlet", strength=1.0),
        "py d=0.9 theta=0.1": PitmanYorTree(3, discount=0.9, strength=0.1),
    }
    for name, model in baselines.items():
        assert learned > heldout_loglik(model, tree, *test) + 0.005, name
