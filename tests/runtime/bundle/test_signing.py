"""Signed bundles: round trip, and refusal of unsigned, foreign-signed and tampered bundles."""
import hashlib
import json
import logging
import os
import stat
import zipfile

import pytest

from runtime.bundle import format as bf
from runtime.errors import BundleError, SitelensError
from runtime.recognizer import Recognizer
from runtime.bundle.signing import SignatureError, generate_keypair, load_public_key
from tests.toy_bundle import make_toy_bundle, toy_image


@pytest.fixture()
def keys(tmp_path):
    site = generate_keypair(tmp_path / "keys" / "site.key")
    other = generate_keypair(tmp_path / "keys" / "other.key")
    return {"key": site[0], "pub": site[1], "id": site[2], "other_key": other[0], "other_pub": other[1]}


def test_keygen_files(keys):
    assert stat.S_IMODE(os.stat(keys["key"]).st_mode) == 0o600
    assert b"PUBLIC KEY" in keys["pub"].read_bytes() and load_public_key(keys["pub"]).key_id == keys["id"]
    with pytest.raises(SitelensError, match="already exists"):
        generate_keypair(keys["key"])
    with pytest.raises(SitelensError, match="private key"):
        load_public_key(keys["key"])


def test_sign_verify_round_trip(tmp_path, keys):
    path = make_toy_bundle(tmp_path / "s.sitelens", signing_key=keys["key"])
    contents = bf.read_bundle(path, trusted_keys=[keys["pub"]])
    assert contents.signature.verified and contents.signature.key_id == keys["id"]
    rec = Recognizer.open(path, trusted_keys=[keys["pub"]])
    assert rec.recognize(toy_image(0)).best == "work_0000"
    # rotation: a device trusting the old and the new key opens bundles signed with either
    assert Recognizer.open(path, trusted_keys=[keys["other_pub"], keys["pub"]]).signature.verified
    # without trusted keys the signature is reported, not required
    assert bf.read_bundle(path).signature.verified is False


def test_unsigned_and_foreign_bundles_refused(tmp_path, keys):
    unsigned = make_toy_bundle(tmp_path / "u.sitelens")
    with pytest.raises(SignatureError, match="unsigned bundle refused") as err:
        Recognizer.open(unsigned, trusted_keys=[keys["pub"]])
    assert str(unsigned) in str(err.value)
    foreign = make_toy_bundle(tmp_path / "f.sitelens", signing_key=keys["other_key"])
    with pytest.raises(SignatureError, match="does not trust"):
        Recognizer.open(foreign, trusted_keys=[keys["pub"]])
    assert Recognizer.open(unsigned).signature is None  # no trust configured: as before


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        members = {n: zin.read(n) for n in zin.namelist()}
        for name, data in edit(members).items():
            zout.writestr(name, data)


def test_tampered_member_with_rewritten_checksums_refused(tmp_path, keys):
    path = make_toy_bundle(tmp_path / "s.sitelens", signing_key=keys["key"])

    def swap_labels(members):
        labels = json.loads(members[bf.LABELS])
        labels["instances"][0], labels["instances"][1] = labels["instances"][1], labels["instances"][0]
        members[bf.LABELS] = json.dumps(labels).encode()
        manifest = json.loads(members[bf.MANIFEST])  # an attacker rewrites the checksums to match
        manifest["members"][bf.LABELS] = {"sha256": hashlib.sha256(members[bf.LABELS]).hexdigest(),
                                          "size": len(members[bf.LABELS])}
        members[bf.MANIFEST] = json.dumps(manifest).encode()
        return members

    bad = tmp_path / "tampered.sitelens"
    _rewrite(path, bad, swap_labels)
    assert Recognizer.open(bad).instances  # checksums alone no longer catch it ...
    with pytest.raises(SignatureError, match="modified after it was signed"):  # ... the signature does
        Recognizer.open(bad, trusted_keys=[keys["pub"]])

    def forge(members):
        sig = json.loads(members[bf.SIGNATURE])
        sig["signature"] = sig["signature"][:-8] + "AAAAAAA="
        members[bf.SIGNATURE] = json.dumps(sig).encode()
        return members

    _rewrite(path, bad, forge)
    with pytest.raises(SignatureError, match="signature check failed"):
        Recognizer.open(bad, trusted_keys=[keys["pub"]])
    _rewrite(path, bad, lambda m: {**m, bf.SIGNATURE: b"{not json"})
    with pytest.raises(BundleError, match="signature.json"):
        Recognizer.open(bad, trusted_keys=[keys["pub"]])


def test_sign_existing_bundle_and_edits(tmp_path, keys, caplog):
    path = make_toy_bundle(tmp_path / "s.sitelens")
    before = bf.read_bundle(path).manifest_bytes
    signed, info = bf.sign_bundle(path, keys["key"])
    assert signed == path and info.key_id == keys["id"]
    assert bf.read_bundle(path, trusted_keys=[keys["pub"]]).manifest_bytes == before  # manifest untouched
    rec = Recognizer.open(path, trusted_keys=[keys["pub"]])
    rec.remove("work_0003")
    with caplog.at_level(logging.WARNING, logger="sitelens"):
        rec.save()
    assert any("written UNSIGNED" in r.getMessage() for r in caplog.records)
    with pytest.raises(SignatureError, match="unsigned"):
        Recognizer.open(path, trusted_keys=[keys["pub"]])
    rec.save(signing_key=keys["key"])
    again = Recognizer.open(path, trusted_keys=[keys["pub"]])
    assert "work_0003" not in again.instances and again.signature.verified


def test_what_is_shown_as_signed_is_signed(tmp_path, keys):
    """The signing date is inside the signed bytes (version 2); an edited date fails the check.
    Version-1 signatures (the manifest alone) still verify, their date reported as not signed."""
    import base64

    from runtime.bundle.signing import load_private_key

    path = make_toy_bundle(tmp_path / "s.sitelens", signing_key=keys["key"])
    info = bf.read_bundle(path, trusted_keys=[keys["pub"]]).signature
    assert info.verified and info.signed and json.loads(zipfile.ZipFile(path).read(bf.SIGNATURE))["version"] == 2
    bad = tmp_path / "date.sitelens"

    def backdate(members):
        sig = json.loads(members[bf.SIGNATURE])
        sig["signed"] = "2020-01-01T00:00:00+00:00"
        return {**members, bf.SIGNATURE: json.dumps(sig).encode()}

    _rewrite(path, bad, backdate)
    with pytest.raises(SignatureError, match="signature check failed"):
        bf.read_bundle(bad, trusted_keys=[keys["pub"]])

    def version_1(members):
        raw = load_private_key(keys["key"]).sign(members[bf.MANIFEST])
        doc = {"algorithm": "ed25519", "key_id": keys["id"], "signature": base64.b64encode(raw).decode(),
               "signed": "2020-01-01T00:00:00+00:00"}
        return {**members, bf.SIGNATURE: json.dumps(doc).encode()}

    old = tmp_path / "v1.sitelens"
    _rewrite(path, old, version_1)
    info = bf.read_bundle(old, trusted_keys=[keys["pub"]]).signature
    assert info.verified and info.signed is None


def test_trust_by_default_is_never_silent(tmp_path, keys, caplog):
    """An explicitly empty trust list refuses; a signature nobody checked is logged as such;
    deeply nested signature.json is a one-line error, not a RecursionError."""
    path = make_toy_bundle(tmp_path / "s.sitelens", signing_key=keys["key"])
    with pytest.raises(SignatureError, match="empty list of trusted keys"):
        Recognizer.open(path, trusted_keys=[])
    with caplog.at_level(logging.WARNING, logger="sitelens"):
        Recognizer.open(path)
    assert any("was not checked" in r.getMessage() and keys["id"] in r.getMessage() for r in caplog.records)
    deep = tmp_path / "deep.sitelens"
    _rewrite(path, deep, lambda m: {**m, bf.SIGNATURE: b"[" * 30_000 + b"]" * 30_000})
    for trusted in ([keys["pub"]], None):
        with pytest.raises(SignatureError, match="signature.json is not valid JSON") as err:
            bf.read_bundle(deep, trusted_keys=trusted)
        assert len(str(err.value)) < 300
    from click.testing import CliRunner

    from sdk.cli import main

    r = CliRunner().invoke(main, ["-q", "inspect", str(deep)])
    assert r.exit_code == 1 and "Traceback" not in r.output and "not valid JSON" in r.output


def test_edits_with_a_key_do_not_launder_tampering(tmp_path, keys):
    """add/remove/save with a signing key re-sign only a bundle whose own signature verifies
    (against --trust on open, or that key now): an edited title in a signed bundle, then a
    re-signed edit, must not come out as a valid bundle."""
    from click.testing import CliRunner

    from sdk.cli import main

    path = make_toy_bundle(tmp_path / "s.sitelens", signing_key=keys["key"])

    def retitle(members):
        manifest = json.loads(members[bf.MANIFEST])
        manifest["instances"]["work_0001"]["title"] = "Forged"
        return {**members, bf.MANIFEST: json.dumps(manifest).encode()}

    forged = tmp_path / "forged.sitelens"
    _rewrite(path, forged, retitle)
    r = CliRunner().invoke(main, ["-q", "remove", str(forged), "work_0002", "--key", str(keys["key"])])
    assert r.exit_code == 1 and "refusing to re-sign" in r.output and "Traceback" not in r.output
    with pytest.raises(SignatureError, match="modified after it was signed"):
        bf.read_bundle(forged, trusted_keys=[keys["pub"]])       # still refused, not laundered
    other = make_toy_bundle(tmp_path / "o.sitelens", signing_key=keys["other_key"])
    with pytest.raises(SignatureError, match="does not trust.*refusing to re-sign"):
        Recognizer.open(other).save(signing_key=keys["key"])
    unsigned = make_toy_bundle(tmp_path / "u.sitelens")
    with pytest.raises(SignatureError, match="unsigned bundle"):
        Recognizer.open(unsigned).save(signing_key=keys["key"])
    r = CliRunner().invoke(main, ["-q", "remove", str(path), "work_0002", "--key", str(keys["key"])])
    assert r.exit_code == 0, r.output                            # its own key's bundle: re-signed
    assert "work_0002" not in Recognizer.open(path, trusted_keys=[keys["pub"]]).instances


def _release(path, out, key, site_id="louvre", release=5, expires=None):
    c = bf.read_bundle(path)
    m = c.manifest.copy()
    m.site.site_id, m.site.release, m.site.expires = site_id, release, expires
    return bf.write_bundle(out, m, c.members, signing_key=key)


def test_rollback_cross_site_and_expired_bundles_are_refused(tmp_path, keys):
    from click.testing import CliRunner

    from sdk.cli import main

    toy = make_toy_bundle(tmp_path / "toy.sitelens")
    old = _release(toy, tmp_path / "r5.sitelens", keys["key"], release=5)
    new = _release(toy, tmp_path / "r6.sitelens", keys["key"], release=6)
    other = _release(toy, tmp_path / "orsay.sitelens", keys["key"], site_id="orsay", release=9)
    stale = _release(toy, tmp_path / "stale.sitelens", keys["key"], release=7, expires="2020-01-01")
    trust = [keys["pub"]]
    accepted = Recognizer.open(new, trusted_keys=trust, site_id="louvre", min_release=5).manifest.site.release
    assert accepted == 6
    with pytest.raises(BundleError, match="release 5 is older than release 6"):
        Recognizer.open(old, trusted_keys=trust, site_id="louvre", min_release=accepted)
    with pytest.raises(BundleError, match="for site 'orsay', this device is for site 'louvre'"):
        Recognizer.open(other, trusted_keys=trust, site_id="louvre")
    with pytest.raises(BundleError, match="expired on 2020-01-01"):
        Recognizer.open(stale, trusted_keys=trust)
    # an edit is a new release, signed as such
    rec = Recognizer.open(new, trusted_keys=trust)
    rec.remove("work_0001")
    rec.save(signing_key=keys["key"])
    assert Recognizer.open(new, trusted_keys=trust, min_release=7).manifest.site.release > 6
    r = CliRunner().invoke(main, ["-q", "recognize", str(old), str(tmp_path / "x.jpg"), "--trust", str(keys["pub"]),
                                  "--min-release", "6"])
    assert r.exit_code == 1 and "older than release 6" in r.output and "Traceback" not in r.output
    assert "site id louvre, release 5" in CliRunner().invoke(main, ["-q", "inspect", str(old)]).output
