import torch

from training.gem import GeM


def test_gem_limits_and_grad():
    x = torch.rand(2, 8, 5, 7) + 0.1
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3)), atol=1e-5)
    g3, g8 = GeM(p=3.0)(x), GeM(p=8.0)(x)
    assert (x.mean(dim=(2, 3)) <= g3 + 1e-6).all() and (g3 <= g8 + 1e-6).all()
    assert (g8 <= x.amax(dim=(2, 3)) + 1e-6).all()
    g = GeM(p=3.0)
    g(x).sum().backward()
    assert g.p.grad is not None and g.p.requires_grad
