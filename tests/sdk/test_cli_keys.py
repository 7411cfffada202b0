"""keygen / sign / verify and --trust on the device commands, as a site and a device use them."""
import json
import os
import stat

import pytest
from click.testing import CliRunner

from sdk.cli import main
from tests.toy_bundle import make_toy_bundle, toy_image


def run(*args):
    return CliRunner().invoke(main, ["-q", *map(str, args)])


def test_site_signs_device_trusts(tmp_path):
    r = run("keygen", "-o", tmp_path / "site.key")
    assert r.exit_code == 0, r.output
    key, pub = tmp_path / "site.key", tmp_path / "site.pub"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and pub.exists()
    assert run("keygen", "-o", key).exit_code == 1  # never overwrites a key silently
    run("keygen", "-o", tmp_path / "other.key")

    bundle = make_toy_bundle(tmp_path / "s.sitelens")
    import cv2

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), toy_image(0)[:, :, ::-1])
    assert "unsigned" in run("inspect", bundle).output
    r = run("recognize", bundle, photo, "--trust", pub)
    assert r.exit_code == 1 and "unsigned bundle refused" in r.output
    r = run("verify", bundle, "--trust", pub)
    assert r.exit_code == 1 and "unsigned" in r.output

    r = run("sign", bundle, "--key", key)
    assert r.exit_code == 0 and "signed" in r.output
    r = run("verify", bundle, "--trust", pub)
    assert r.exit_code == 0 and "OK" in r.output
    r = run("recognize", bundle, photo, "--trust", pub, "--json")
    assert r.exit_code == 0 and json.loads(r.output.splitlines()[-1])["best"] == "work_0000"
    r = run("recognize", bundle, photo, "--trust", tmp_path / "other.pub")
    assert r.exit_code == 1 and "does not trust" in r.output
    r = run("recognize", bundle, photo, "--trust", tmp_path / "other.pub", "--trust", pub)  # rotation
    assert r.exit_code == 0
    assert "verified against --trust" in run("inspect", bundle, "--trust", pub).output

    # an edit without the key: unsigned (and said); an edit of that unsigned bundle with the key is
    # refused (nothing vouches for what it now holds); `sign` is the deliberate step; then edits
    # with the key re-sign
    r = CliRunner().invoke(main, ["remove", str(bundle), "work_0001"])
    assert r.exit_code == 0 and "UNSIGNED" in r.output
    assert run("eval", bundle, tmp_path, "--trust", pub).exit_code == 1
    r = run("remove", bundle, "work_0002", "--key", key)
    assert r.exit_code == 1 and "refusing to sign an edit of an unsigned bundle" in r.output
    assert run("sign", bundle, "--key", key).exit_code == 0
    r = run("remove", bundle, "work_0002", "--key", key)
    assert r.exit_code == 0 and "re-signed" in r.output
    assert run("verify", bundle, "--trust", pub).exit_code == 0


def test_camera_refuses_untrusted(tmp_path):
    run("keygen", "-o", tmp_path / "site.key")
    bundle = make_toy_bundle(tmp_path / "s.sitelens")
    r = run("camera", bundle, "--source", tmp_path / "none.mp4", "--trust", tmp_path / "site.pub")
    assert r.exit_code == 1 and "unsigned bundle refused" in r.output


def test_key_files_are_written_whole_and_never_clobbered(tmp_path, monkeypatch):
    from runtime.bundle import signing

    target = tmp_path / "site.key"
    target.write_bytes(b"someone else's key")            # appeared after the exists() check
    tmp = signing._exclusive_temp(target, b"new", 0o600)
    with pytest.raises(signing.SitelensError, match="already exists"):
        signing._place(tmp, target, overwrite=False)
    assert target.read_bytes() == b"someone else's key" and not tmp.exists()
    # keygen into a missing folder makes it; under a file it cannot: one line, no traceback
    assert run("keygen", "-o", tmp_path / "missing" / "site.key").exit_code == 0
    r = run("keygen", "-o", target / "site.key")
    assert r.exit_code == 1 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    r = run("sign", make_toy_bundle(tmp_path / "b.sitelens"), "--key", tmp_path / "missing" / "site.key",
            "-o", target / "x.sitelens")
    assert r.exit_code == 1 and "Traceback" not in r.output and str(target) in r.output
    # an encrypted private key: the passphrase comes from the environment
    monkeypatch.setenv("MY_PASS", "correct horse")
    assert run("keygen", "-o", tmp_path / "enc.key", "--passphrase-env", "MY_PASS").exit_code == 0
    assert b"ENCRYPTED" in (tmp_path / "enc.key").read_bytes()
    bundle = make_toy_bundle(tmp_path / "e.sitelens")
    r = run("sign", bundle, "--key", tmp_path / "enc.key")
    assert r.exit_code == 1 and "SITELENS_KEY_PASSPHRASE" in r.output
    monkeypatch.setenv("SITELENS_KEY_PASSPHRASE", "wrong")
    assert "wrong passphrase" in run("sign", bundle, "--key", tmp_path / "enc.key").output
    monkeypatch.setenv("SITELENS_KEY_PASSPHRASE", "correct horse")
    assert run("sign", bundle, "--key", tmp_path / "enc.key").exit_code == 0
    assert run("verify", bundle, "--trust", tmp_path / "enc.pub").exit_code == 0

