"""Reliability of the bundle reader and of concurrent edits; prints one JSON object.

1. Fuzzing: random byte mutations of whole bundles (a small torch-free bundle and a real one of the
   embedded demo site) and structural tampering with rewritten checksums. Each is opened (and, if it
   opens, used) in a child process, so a crash (a signal, e.g. a segfault in a native library) is
   counted instead of ending the bench. Only sitelens's own errors count as refusals.
2. Concurrency: 8 threads recognize (``--calls`` each) while another thread adds, removes and saves;
   errors, throughput, and recognize latency p50/p99 while edits run vs without edits. Then the
   saved bundle is reloaded and every remaining instance must recognize its own reference.
3. Attacks (``ATTACKS``): what a hostile bundle, image or stream, or a careless operator, sends
   (zip bombs, 65k-member zips, traversal names, laundering, rollback, another site's bundle, an
   expired one, image-size bypasses, stream start/stop, two editors), each in its own child
   process: refused or not, the child's exit status, its peak memory above its baseline, seconds.

    python bench/reliability.py [--mutations 600] [--calls 10000] [--real-calls 300] [--out reliability]
    python bench/reliability.py --attacks-only [--out reliability_attacks]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import ROOT, emit, percentiles

CHILD = r"""
import sys, json
sys.path.insert(0, {root!r})
import numpy as np
from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from tests.runtime.bundle.test_fuzz import mutate
data = open({src!r}, "rb").read()
rng = np.random.default_rng({seed})
probe = np.full((120, 160, 3), 128, np.uint8)
for i in range({start}, {stop}):
    rng = np.random.default_rng({seed} * 1_000_003 + i)
    open({dst!r}, "wb").write(mutate(data, rng))
    print("try", i, flush=True)
    try:
        Recognizer.open({dst!r}).recognize(probe)
        outcome = "opened"
    except SitelensError:
        outcome = "refused"
    except Exception as exc:
        outcome = "other:" + type(exc).__name__
    print("done", i, outcome, flush=True)
"""


def fuzz_file(src: Path, mutations: int, seed: int, tmp: Path) -> dict:
    """Mutate ``src`` ``mutations`` times in child processes; count outcomes and crashes."""
    counts = {"tried": 0, "refused": 0, "opened": 0, "other_errors": 0, "crashes": 0}
    others, start = [], 0
    while start < mutations:
        code = CHILD.format(root=str(ROOT), src=str(src), dst=str(tmp / "m.sitelens"), seed=seed, start=start,
                            stop=mutations)
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        last_try = start - 1
        for line in proc.stdout.splitlines():
            parts = line.split()
            if parts[0] == "try":
                last_try = int(parts[1])
            elif parts[0] == "done":
                counts["tried"] += 1
                outcome = parts[2]
                if outcome in ("refused", "opened"):
                    counts[outcome] += 1
                else:
                    counts["other_errors"] += 1
                    others.append(outcome)
        if proc.returncode != 0:  # died in the middle of mutation `last_try`
            counts["crashes"] += 1
            counts["tried"] += 1
            others.append(f"crash at mutation {last_try}: exit {proc.returncode} {proc.stderr[-300:]}")
            start = last_try + 1
        else:
            start = mutations
    counts["details"] = others[:10]
    return counts


def structural(src: Path, tmp: Path) -> dict:
    from runtime.errors import SitelensError
    from runtime.recognizer import Recognizer
    from tests.runtime.bundle.test_fuzz import TAMPERING, _members, _write

    refused, accepted = 0, []
    for name, edit in TAMPERING.items():
        path = _write(tmp / "t.sitelens", edit(_members(src)),
                      fix_checksums=name not in ("manifest not json", "manifest list"))
        try:
            Recognizer.open(path)
            accepted.append(name)
        except SitelensError:
            refused += 1
    return {"tried": len(TAMPERING), "refused": refused, "accepted": accepted}


def concurrency(bundle: Path, images: dict, make_new, calls: int, threads: int = 8) -> dict:
    """``make_new(step)``: a new picture for the editor to add (never seen before)."""
    from runtime.recognizer import Recognizer

    rec = Recognizer.open(bundle)
    names = sorted(images)
    # latency without edits first, same threads
    quiet = _hammer(rec, images, names, min(calls, 200), threads, editor=None)
    edits = {"adds": 0, "removes": 0, "saves": 0}
    expected = dict(images)

    def editor(stop):
        step = 0
        while not stop.is_set():
            new = f"added_{step:05d}"
            expected[new] = make_new(step)
            rec.add(new, [expected[new]])
            edits["adds"] += 1
            if step % 2 == 0:
                victim = names[(step // 2) % len(names)]
                if victim in expected and len(expected) > 4:
                    rec.remove(victim)
                    expected.pop(victim)
                    edits["removes"] += 1
            if step % 5 == 0:
                rec.save()
                edits["saves"] += 1
            step += 1

    busy = _hammer(rec, images, names, calls, threads, editor=editor)
    rec.save()
    again = Recognizer.open(bundle)
    wrong = [i for i, img in expected.items() if again.recognize(img).best != i]
    return {"threads": threads, "calls_per_thread": calls, "recognize_calls": busy["calls"],
            "errors": busy["errors"], "error_examples": busy["examples"], "edits": edits,
            "latency_without_edits": quiet["latency"], "latency_during_edits": busy["latency"],
            "calls_per_s": busy["calls_per_s"], "reloaded_instances": len(again.instances),
            "reloaded_self_recognition_failures": len(wrong), "failure_examples": wrong[:5]}


def _hammer(rec, images, names, calls, threads, editor):
    errors, examples, lat = [0], [], [[] for _ in range(threads)]
    stop = threading.Event()

    def worker(k):
        rng = np.random.default_rng(k)
        for _ in range(calls):
            img = images[names[int(rng.integers(0, len(names)))]]
            t = time.perf_counter()
            try:
                rec.recognize(img)
            except Exception as exc:  # noqa: BLE001 - every error counts
                errors[0] += 1
                examples.append(repr(exc))
            lat[k].append(time.perf_counter() - t)

    ed = threading.Thread(target=editor, args=(stop,)) if editor else None
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    if ed:
        ed.start()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stop.set()
    if ed:
        ed.join()
    wall = time.perf_counter() - t0
    all_lat = [x for row in lat for x in row]
    return {"calls": len(all_lat), "errors": errors[0], "examples": examples[:5], "latency": percentiles(all_lat),
            "calls_per_s": round(len(all_lat) / wall, 1)}


ATTACK = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from reliability import attack
run = attack({name!r}, {work!r})          # prepares the hostile input; the run is what is measured
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
outcome, message = run()
print(json.dumps({{"outcome": outcome, "message": message[:200], "message_chars": len(message),
                   "seconds": round(time.perf_counter() - t, 2),
                   "peak_mb_above_baseline": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, 1)}}))
"""
ATTACKS = ("bzip2 bomb", "deflate bomb, honest header", "deflate bomb, lying header", "65535-member zip",
           "member name traversal", "deep signature.json", "empty trust list", "laundering an edited title",
           "rollback to an older release", "another site's bundle", "expired bundle", "junk before a JPEG",
           "PNM header claiming 3.6 GP", "HEIC photo", "stream start/stop x300 on a video file",
           "two editors of one bundle")


def attack(name: str, work: str):
    """Prepare one attack in this process; returns a callable that runs it and returns ("refused",
    message) when sitelens said no, ("accepted", ...) otherwise (a crash is seen by the parent)."""
    import zipfile

    from runtime.bundle import format as bf
    from runtime.errors import SitelensError
    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from runtime.bundle.signing import generate_keypair
    from tests.toy_bundle import make_toy_bundle, toy_image

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    key = work / "site.key"
    if not key.exists():
        generate_keypair(key)
    pub = work / "site.pub"
    toy = make_toy_bundle(work / f"toy_{abs(hash(name))}.sitelens", n_instances=5, signing_key=key)

    def rezip(entries, src=toy, out=work / "attack.sitelens", skip=()):
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
            for n in zin.namelist():
                if n not in skip:
                    zout.writestr(n, zin.read(n))
            for entry, data, kind in entries:
                zout.writestr(entry, data, compress_type=kind)
        return out

    def with_site(site_id, release, expires=None):
        c = bf.read_bundle(toy)
        m = c.manifest.copy()
        m.site.site_id, m.site.release, m.site.expires = site_id, release, expires
        return bf.write_bundle(work / f"{site_id}_{release}.sitelens", m, c.members, signing_key=key)

    prepared = {}
    if name == "bzip2 bomb":
        prepared["path"] = rezip([(bf.REFS, bytes(256 << 20), zipfile.ZIP_BZIP2)], skip={bf.REFS})
    elif name == "deflate bomb, honest header":
        prepared["path"] = rezip([(bf.REFS, bytes(256 << 20), zipfile.ZIP_DEFLATED)], skip={bf.REFS})
    elif name == "deflate bomb, lying header":   # the zip headers claim the manifest's size
        from tests.toy_bundle import claim_member_size

        path = rezip([(bf.REFS, bytes(256 << 20), zipfile.ZIP_DEFLATED)], skip={bf.REFS})
        claim_member_size(path, bf.REFS, bf.read_bundle(toy).manifest.members[bf.REFS].size)
        prepared["path"] = path
    elif name == "65535-member zip":
        prepared["path"] = rezip([(f"x/{k}", b"", zipfile.ZIP_STORED) for k in range(65535 - 12)])
    return lambda: _run_attack(name, work, prepared, toy, key, pub, rezip, with_site)


def _run_attack(name, work, prepared, toy, key, pub, rezip, with_site) -> tuple[str, str]:
    import zipfile

    from runtime.bundle import format as bf
    from runtime.errors import SitelensError
    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from tests.toy_bundle import make_toy_bundle, toy_image

    try:
        if name in ("bzip2 bomb", "deflate bomb, honest header"):
            Recognizer.open(prepared["path"], trusted_keys=[pub])
        elif name == "deflate bomb, lying header":
            Recognizer.open(prepared["path"], trusted_keys=[pub])
        elif name == "65535-member zip":
            Recognizer.open(prepared["path"])
        elif name == "member name traversal":
            Recognizer.open(rezip([("../../x", b"evil", zipfile.ZIP_STORED), ("a\x1b[2Jb", b"", zipfile.ZIP_STORED)]))
        elif name == "deep signature.json":
            Recognizer.open(rezip([(bf.SIGNATURE, b"[" * 30000 + b"]" * 30000, zipfile.ZIP_DEFLATED)],
                                  skip={bf.SIGNATURE}), trusted_keys=[pub])
        elif name == "empty trust list":
            Recognizer.open(toy, trusted_keys=[])
        elif name == "laundering an edited title":
            import json

            c = bf.read_bundle(toy)
            m = json.loads(c.manifest_bytes)
            m["instances"]["work_0001"]["title"] = "Forged"
            forged = rezip([(bf.MANIFEST, json.dumps(m).encode(), zipfile.ZIP_DEFLATED)], skip={bf.MANIFEST})
            rec = Recognizer.open(forged)
            rec.remove("work_0002")
            rec.save(signing_key=key)
        elif name == "rollback to an older release":
            with_site("louvre", 7)
            Recognizer.open(with_site("louvre", 5), trusted_keys=[pub], site_id="louvre", min_release=7)
        elif name == "another site's bundle":
            Recognizer.open(with_site("orsay", 9), trusted_keys=[pub], site_id="louvre")
        elif name == "expired bundle":
            Recognizer.open(with_site("louvre", 8, "2020-01-01"), trusted_keys=[pub], site_id="louvre")
        elif name == "junk before a JPEG":
            import cv2

            data = cv2.imencode(".jpg", np.zeros((7000, 7000, 3), np.uint8))[1].tobytes()
            load_image(b"\x00" + data)
        elif name == "PNM header claiming 3.6 GP":
            load_image(b"P6\n60000 60000\n255\n" + bytes(632))
        elif name == "HEIC photo":
            load_image(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(600))
        elif name == "stream start/stop x300 on a video file":
            import cv2

            from runtime.stream import RecognitionStream

            video = work / "short.avi"
            writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
            for k in range(20):
                writer.write(cv2.resize(toy_image(k % 3), (160, 120)))
            writer.release()
            rec = Recognizer.open(toy)
            for i in range(300):
                stream = RecognitionStream(rec, str(video)).start()
                time.sleep(0.001 * (i % 7))
                stream.stop()
            return "survived", "300 cycles"
        elif name == "two editors of one bundle":
            path = make_toy_bundle(work / "edited.sitelens", n_instances=5)
            a, b = Recognizer.open(path), Recognizer.open(path)
            a.remove("work_0001")
            a.save()
            b.remove("work_0002")
            b.save()
            if "work_0001" in Recognizer.open(path).instances:
                return "accepted", "an edit was lost"
        else:
            raise ValueError(name)
    except SitelensError as exc:
        return "refused", str(exc)
    return "accepted", ""


def attacks(work: Path) -> dict:
    import json

    out = {}
    for name in ATTACKS:
        code = ATTACK.format(root=str(ROOT), bench=str(ROOT / "bench"), name=name, work=str(work))
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
        row = json.loads(line) if line.startswith("{") else {}
        row["exit_status"] = proc.returncode
        if proc.returncode != 0:
            row["outcome"] = "crashed"
            row["stderr"] = proc.stderr[-300:]
        out[name] = row
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--attacks-only", action="store_true", help="only the attacks (section 3)")
    ap.add_argument("--mutations", type=int, default=600, help="random byte mutations of the small bundle")
    ap.add_argument("--real-mutations", type=int, default=200, help="... of the real demo-site bundle")
    ap.add_argument("--calls", type=int, default=10000, help="recognize calls per thread (small bundle)")
    ap.add_argument("--real-calls", type=int, default=300, help="recognize calls per thread (real bundle)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    from export.bundler import build_bundle
    from runtime.image.image_io import load_image
    from sdk.demo_site import make_demo_site, paint
    from tests.toy_bundle import make_toy_bundle, toy_image

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["attacks"] = attacks(tmp / "attacks")
        if args.attacks_only:
            emit(result, args, args.out)
            return
        toy = make_toy_bundle(tmp / "toy.sitelens", n_instances=40)
        site, _ = make_demo_site(tmp / "demo")
        real = build_bundle(site, tmp / "demo.sitelens", size=224, calibrate=False, progress=False)
        result["fuzz"] = {"small_bundle": fuzz_file(toy, args.mutations, 1, tmp),
                          "real_bundle": fuzz_file(real, args.real_mutations, 2, tmp),
                          "structural_small": structural(toy, tmp), "structural_real": structural(real, tmp)}
        f = result["fuzz"]
        result["fuzz_summary"] = {
            "mutations_tried": sum(f[k]["tried"] for k in f),
            "refused": sum(f[k]["refused"] for k in f),
            "crashes": sum(f[k].get("crashes", 0) for k in f),
            "other_exceptions": sum(f[k].get("other_errors", 0) for k in f)}
        toy_images = {f"work_{i:04d}": toy_image(1000 * i) for i in range(40)}
        result["concurrency_small"] = concurrency(toy, toy_images, lambda k: toy_image(10 ** 6 + k), args.calls)
        real_images = {p.parent.name: load_image(p) for p in sorted(site.glob("*/catalogue.jpg"))}
        styles = ("landscape", "stripes", "portrait", "grid", "shapes", "circles")
        result["concurrency_real"] = concurrency(real, real_images, lambda k: paint(styles[k % 6], 77_000 + k),
                                                 args.real_calls)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
