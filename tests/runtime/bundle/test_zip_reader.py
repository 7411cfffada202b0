"""The bounded zip reader that bundles and visitor-log entries share: the central directory is
judged before a byte is inflated, and a member never inflates past its limit."""
import io
import warnings
import zipfile

import pytest

from runtime.bundle.zip_reader import BoundedZip
from runtime.errors import BundleError

KNOWN = {"a.json", "b.npy"}.__contains__


def _zip(entries, compression=zipfile.ZIP_STORED) -> io.BytesIO:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compression) as z:
        warnings.simplefilter("ignore")   # duplicate names, on purpose
        for name, data in entries:
            z.writestr(name, data)
    buf.seek(0)
    return buf


def _open(buf, required=("a.json",), max_members=4):
    return BoundedZip(buf, "x.thing", "test thing", KNOWN, required, max_members)


def test_known_members_are_read_within_their_limits():
    with _open(_zip([("a.json", b"{}"), ("b.npy", b"0123456789")])) as z:
        assert z.names() == {"a.json", "b.npy"} and z.declared_total() == 12
        assert z.read("b.npy", 10) == b"0123456789"
        with pytest.raises(BundleError, match=r"x.thing: member b.npy claims 10 bytes \(limit 9\)"):
            z.read("b.npy", 9)
        with pytest.raises(BundleError, match="corrupt or modified"):
            z.read("b.npy", 100, declared=11)


@pytest.mark.parametrize("entries, compression, message", [
    ([("b.npy", b"")], zipfile.ZIP_STORED, r"not a test thing \(no a.json\)"),
    ([("a.json", b""), ("c.pkl", b"")], zipfile.ZIP_STORED, r"not a test thing \(unknown members 'c.pkl'\)"),
    ([("a.json", b""), ("a.json", b"")], zipfile.ZIP_STORED, r"corrupt test thing \(duplicate members 'a.json'\)"),
    ([("a.json", b"")] + [(f"b{i}.npy", b"") for i in range(5)], zipfile.ZIP_STORED, "6 zip entries"),
    ([("a.json", b"{}")], zipfile.ZIP_BZIP2, "compression sitelens does not read"),
])
def test_what_is_not_one_is_refused_by_its_directory(entries, compression, message):
    with pytest.raises(BundleError, match="x.thing: .*" + message):
        _open(_zip(entries, compression))


def test_garbage_and_lying_headers_name_the_file():
    with pytest.raises(BundleError, match="x.thing: not a test thing or truncated file"):
        _open(io.BytesIO(b"PK\x03\x04 not a zip at all"))
    raw = bytearray(_zip([("a.json", b"{}" * 50)], zipfile.ZIP_DEFLATED).getvalue())
    at = raw.index(b"PK\x01\x02") + 24      # the central directory's uncompressed size: claim 1 byte
    raw[at:at + 4] = (1).to_bytes(4, "little")
    with _open(io.BytesIO(bytes(raw))) as z, pytest.raises(BundleError, match="x.thing: member a.json is corrupt"):
        z.read("a.json", 1 << 20)
