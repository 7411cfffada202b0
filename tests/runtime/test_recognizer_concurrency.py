"""Stress: 8 threads recognize while another thread adds, removes and saves; afterwards the
saved bundle reloads and every remaining instance recognizes its own reference, with its
keypoints still on the right rows."""
import threading
import time

import numpy as np

from runtime.recognizer import Recognizer
from tests.toy_bundle import make_toy_bundle, toy_image


def test_recognize_while_adding_removing_saving(tmp_path):
    path = make_toy_bundle(tmp_path / "s.sitelens", n_instances=30, verify="orb")
    rec = Recognizer.open(path)
    stop = threading.Event()
    errors, calls = [], [0] * 8
    expected_images = {f"work_{i:04d}": toy_image(1000 * i) for i in range(30)}

    def reader(k):
        rng = np.random.default_rng(k)
        while not stop.is_set():
            try:
                rec.recognize(toy_image(1000 * int(rng.integers(0, 30))))
                calls[k] += 1
            except Exception as exc:  # noqa: BLE001 - any error fails the test
                errors.append(repr(exc))

    def editor():
        try:
            for step in range(40):
                new = f"new_{step:03d}"
                expected_images[new] = toy_image(500_000 + step)
                rec.add(new, [expected_images[new]], {"title": new})
                if step % 3 == 0:
                    gone = f"work_{step // 3:04d}"
                    rec.remove(gone)
                    expected_images.pop(gone)
                if step % 5 == 0:
                    rec.save()
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    def second_editor():  # add vs add: rows and keypoints must stay aligned
        try:
            for step in range(20):
                name = f"other_{step:03d}"
                expected_images[name] = toy_image(900_000 + step)
                rec.add(name, [expected_images[name]])
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    editors = [threading.Thread(target=editor), threading.Thread(target=second_editor)]
    for t in editors:
        t.start()
    for t in editors:
        t.join()
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert min(calls) > 0
    rec.save()

    again = Recognizer.open(path)
    assert sorted(again.instances) == sorted(expected_images)
    for inst, img in expected_images.items():
        r = again.recognize(img)
        assert r.best == inst and r.accepted, inst
        rows = again.index.rows_of([inst])[inst]
        kp, desc = again.index.features.row(rows[0])
        want_kp, want_desc = again.verifier.reference_features(img)
        np.testing.assert_array_equal(kp, want_kp)        # this instance's own keypoints, on its own row
        np.testing.assert_array_equal(desc, want_desc)
        title = {"new": inst, "other": None, "work": inst.replace("_", " ")}[inst.split("_")[0]]
        assert again.metadata[inst].get("title") == title, inst
