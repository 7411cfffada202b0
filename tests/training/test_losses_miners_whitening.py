import numpy as np
import torch
import torch.nn.functional as F

from training.losses import ContrastiveLoss, InstanceCrossEntropy, TripletLoss, Tuples
from training.miners import mine_negatives
from training.reducers import AvgNonZeroReducer, MeanReducer
from training.whitening import apply_whitening, learn_whitening


def _batch(*rows):
    """anchor, positive, negatives stacked as the trainer does (B=1)."""
    x = torch.tensor(rows, dtype=torch.float32)
    return x, torch.arange(len(rows)), Tuples.stacked(1, len(rows) - 2)


def test_losses_share_one_signature():
    far = _batch([1.0, 0.0], [1.0, 0.0], [0.0, 1.0])
    close = _batch([1.0, 0.0], [1.0, 0.0], [1.0, 0.0])
    assert TripletLoss(0.1)(*far).item() == 0.0
    assert abs(TripletLoss(0.1)(*close).item() - 0.1) < 1e-6
    assert ContrastiveLoss(0.7)(*far).item() == 0.0
    assert ContrastiveLoss(0.7)(*close).item() > 0
    mixed = _batch([1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0])  # 1 hard of 4 negatives
    assert abs(TripletLoss(0.1, MeanReducer())(*mixed).item() - 0.025) < 1e-6
    assert abs(TripletLoss(0.1, AvgNonZeroReducer())(*mixed).item() - 0.1) < 1e-6
    assert AvgNonZeroReducer()(torch.zeros(3)).item() == 0.0


def test_instance_ce_learns():
    torch.manual_seed(0)
    x = F.normalize(torch.randn(20, 8), dim=1)
    y = torch.arange(20) % 4
    tuples = Tuples(torch.arange(10), torch.arange(10, 20), torch.zeros(10, 0, dtype=torch.long))
    ce = InstanceCrossEntropy(8, 4)
    opt = torch.optim.SGD(ce.parameters(), lr=1.0)
    first = ce(x, y, tuples).item()
    for _ in range(50):
        opt.zero_grad()
        loss = ce(x, y, tuples)
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_miner_hardest_one_per_instance():
    pool = np.eye(4, dtype=np.float32)[[0, 1, 1, 2, 3]]
    pool[2] = pool[2] * 0.9 + 0.1
    labels = np.array([0, 1, 1, 2, 3])
    anchors = np.array([[0.1, 1.0, 0.05, 0.0]], np.float32)
    neg = mine_negatives(anchors, np.array([0]), pool, labels, k=3)
    assert neg.shape == (1, 3)
    assert labels[neg[0]].tolist()[0] == 1 and len(set(labels[neg[0]])) == 3
    assert 0 not in labels[neg[0]]
    neg = mine_negatives(anchors, np.array([0]), pool, labels, k=5)
    assert (neg[0] == -1).sum() == 2  # only 3 other instances exist
    semi = mine_negatives(anchors, np.array([0]), pool, labels, k=1, positive_sims=np.array([1.0]),
                          strategy="semihard", margin=0.5, rng=np.random.default_rng(0))
    assert semi.shape == (1, 1)


def test_whitening_brings_matching_pairs_closer():
    rng = np.random.default_rng(0)
    d, n = 16, 200
    centres = rng.normal(size=(n, d))
    nuisance = np.zeros(d)
    nuisance[:3] = 4.0  # matching pairs differ strongly along a few directions
    a = centres + rng.normal(size=(n, d)) * 0.1
    b = centres + rng.normal(size=(n, d)) * 0.1 + rng.normal(size=(n, 1)) * nuisance
    x = np.concatenate([a, b])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pairs = np.stack([np.arange(n), np.arange(n) + n], 1)
    proj, mean = learn_whitening(x, pairs, dim=12)
    assert proj.shape == (12, d)
    y = apply_whitening(x, proj, mean)

    def mp1(z):
        return np.mean(np.argmax(z[:n] @ z[n:].T, axis=1) == np.arange(n))

    assert mp1(y) > mp1(x) + 0.1
    assert np.mean(np.sum(y[:n] * y[n:], 1)) > np.mean(np.sum(x[:n] * x[n:], 1))
