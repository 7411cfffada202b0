"""keygen / sign / verify and --trust on the device commands, as a site and a device use them."""
import json
import os
import stat

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

    # an edit without the key: unsigned (and said); with the key: re-signed
    r = CliRunner().invoke(main, ["remove", str(bundle), "work_0001"])
    assert r.exit_code == 0 and "UNSIGNED" in r.output
    assert run("eval", bundle, tmp_path, "--trust", pub).exit_code == 1
    r = run("remove", bundle, "work_0002", "--key", key)
    assert r.exit_code == 0 and "re-signed" in r.output
    assert run("verify", bundle, "--trust", pub).exit_code == 0


def test_camera_refuses_untrusted(tmp_path):
    run("keygen", "-o", tmp_path / "site.key")
    bundle = make_toy_bundle(tmp_path / "s.sitelens")
    r = run("camera", bundle, "--source", tmp_path / "none.mp4", "--trust", tmp_path / "site.pub")
    assert r.exit_code == 1 and "unsigned bundle refused" in r.output
