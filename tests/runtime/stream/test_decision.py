import pytest

from runtime.stream.decision import DecisionLayer


def feed(layer, seq, fps=10.0):
    out = []
    for i, inst in enumerate(seq):
        out += [(e.event, e.instance, e.t) for e in layer.update(inst, 0.9 if inst else 0.3, i / fps, i)]
    return out


def test_k_of_n_fires_once_then_lost_and_unknown():
    seq = [None] * 5 + ["A", None, "A", "A", "A", "A"] + [None] * 8
    ev = feed(DecisionLayer(k=3, n=5), seq)
    assert [e[:2] for e in ev] == [("unknown", None), ("recognized", "A"), ("lost", "A"), ("unknown", None)]
    assert ev[1][2] == pytest.approx(0.8)  # third acceptance


def test_no_flicker_between_two_works():
    seq = ["A", "A", "A", "B", "A", "B", "A", "A", "B", "A"]
    ev = feed(DecisionLayer(k=3, n=5), seq)
    assert ev == [("recognized", "A", 0.2)]


def test_debounce_and_switch():
    seq = ["A"] * 5 + [None] * 6 + ["A"] * 5
    ev = feed(DecisionLayer(k=3, n=5, debounce_s=10), seq)
    assert [e[:2] for e in ev].count(("recognized", "A")) == 1  # back within 10 s: silent
    ev = feed(DecisionLayer(k=3, n=5, debounce_s=10), ["A"] * 5 + ["B"] * 5 + ["A"] * 5)
    assert [e[:2] for e in ev if e[0] == "recognized"] == [("recognized", "A"), ("recognized", "B"), ("recognized", "A")]
    ev = feed(DecisionLayer(k=3, n=5, debounce_s=0.5), ["A"] * 5 + [None] * 6 + ["A"] * 5)
    assert [e[:2] for e in ev].count(("recognized", "A")) == 2


def test_bad_params():
    with pytest.raises(ValueError):
        DecisionLayer(k=6, n=5)
