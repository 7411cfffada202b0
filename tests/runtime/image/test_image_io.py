import struct

import cv2
import numpy as np
import pytest

from runtime.errors import ImageError
from runtime.image.image_header import image_size
from runtime.image.image_io import load_image, probe_image, set_max_pixels, to_rgb_uint8


def _jpeg_with_orientation(img_bgr: np.ndarray, orientation: int) -> bytes:
    ok, enc = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    data = enc.tobytes()
    # minimal EXIF APP1: little-endian TIFF header, one IFD entry (0x0112 Orientation, SHORT)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + app1 + data[2:]


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = (0, 0, 255)  # left half red (BGR)
    path = tmp_path / "rot.jpg"
    path.write_bytes(_jpeg_with_orientation(img, 6))  # 6 = rotate 90 cw to display
    out = load_image(path)
    assert out.shape == (80, 40, 3)
    assert out[:40].mean(axis=(0, 1))[0] > 200  # red now on top, as RGB


def test_grayscale_rgba_and_16bit(tmp_path):
    gray = np.full((40, 48), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    assert load_image(tmp_path / "g.png").shape == (40, 48, 3)
    rgba = np.zeros((32, 32, 4), np.uint8)  # fully transparent -> white
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert (load_image(tmp_path / "a.png") == 255).all()
    deep = np.full((36, 36, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    out = load_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and (out == 255).all()


def test_bytes_array_and_float():
    img = np.random.default_rng(0).integers(0, 255, (36, 40, 3), dtype=np.uint8)
    ok, enc = cv2.imencode(".png", img[:, :, ::-1])
    np.testing.assert_array_equal(load_image(enc.tobytes()), img)
    np.testing.assert_array_equal(load_image(img), img)
    assert load_image(np.ones((32, 32), np.float32)).max() == 255


@pytest.mark.parametrize("read", [load_image, probe_image])   # probe_image: what load_image checks in the header
@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"not an image at all", "unsupported image format"),
                                              (b"\xff\xd8\xff\xe0garbage", "damaged header")])
def test_bad_files_name_the_path(tmp_path, content, message, read):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as err:
        read(path)
    assert str(path) in str(err.value)


def test_probe_reads_the_size_and_limit_from_the_header(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        probe_image(tmp_path / "nope.jpg")
    ok, enc = cv2.imencode(".png", np.zeros((37, 53, 3), np.uint8))
    (tmp_path / "ok.png").write_bytes(enc.tobytes())
    assert probe_image(tmp_path / "ok.png") == (53, 37)
    set_max_pixels(1000)
    try:
        with pytest.raises(ImageError, match="limit"):
            probe_image(tmp_path / "ok.png")
    finally:
        set_max_pixels(None)


def test_missing_file_and_bad_type(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError):
        load_image(12)
    with pytest.raises(ImageError, match="channels"):
        to_rgb_uint8(np.zeros((4, 4, 5), np.uint8))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tiff"])
def test_header_size_without_decoding(ext):
    img = np.zeros((37, 53, 3), np.uint8)
    ok, enc = cv2.imencode(ext, img)
    assert image_size(enc.tobytes()) == (53, 37)


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    # a JPEG header claiming 20000 x 20000 pixels and no image data: refused from the header alone
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 20000, 20000, 1) + b"\x01\x11\x00"
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    with pytest.raises(ImageError, match="400.0 MP, above the 50 MP limit") as err:
        load_image(huge)
    assert str(huge) in str(err.value)
    ok, enc = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))
    set_max_pixels(5000)
    try:
        with pytest.raises(ImageError, match="above the 0.005 MP limit"):
            load_image(enc.tobytes())
        with pytest.raises(ImageError, match="limit"):
            load_image(np.zeros((100, 100, 3), np.uint8))
    finally:
        set_max_pixels(None)
    monkeypatch.setenv("SITELENS_MAX_PIXELS", "9000")
    with pytest.raises(ImageError, match="limit"):
        load_image(enc.tobytes())
    monkeypatch.setenv("SITELENS_MAX_PIXELS", "12000")
    assert load_image(enc.tobytes()).shape == (100, 100, 3)


def test_too_small_to_describe(tmp_path):
    path = tmp_path / "icon.png"
    cv2.imwrite(str(path), np.zeros((12, 300, 3), np.uint8))
    with pytest.raises(ImageError, match="too small to describe") as err:
        load_image(path)
    assert str(path) in str(err.value)
    with pytest.raises(ImageError, match="too small"):
        load_image(np.zeros((8, 8, 3), np.uint8))


def test_reduced_jpeg_decode_keeps_the_descriptor(tiny_bundle):
    from runtime.image.image_io import jpeg_reduction
    from runtime.recognizer import Recognizer

    assert jpeg_reduction(1280, 720, (224, 640)) == 2 and jpeg_reduction(4000, 3000, (224, 640)) == 4
    assert jpeg_reduction(1280, 720, (224, 0)) == 2 and jpeg_reduction(640, 480, (224, 640)) == 1
    assert jpeg_reduction(1280, 720, None) == 1
    from tests.conftest import poster

    frame = cv2.resize(poster(3), (1280, 720), interpolation=cv2.INTER_CUBIC)
    frame = cv2.GaussianBlur(frame, (0, 0), 1.0)
    data = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    full, reduced = load_image(data), load_image(data, need=(224, 640))
    assert full.shape == (720, 1280, 3) and reduced.shape == (360, 640, 3)
    rec = Recognizer.open(tiny_bundle)
    a, b = rec.embed(full), rec.embed(reduced)
    assert float(a @ b) > 0.995  # the same descriptor within tolerance
    assert rec.decode_need[0] >= rec.spec.size


@pytest.mark.parametrize("make", [
    lambda rng: rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
    lambda rng: rng.integers(0, 256, (37, 106, 3), dtype=np.uint8)[:, ::2],        # not contiguous
    lambda rng: rng.integers(0, 65536, (37, 53, 3), dtype=np.uint16),
    lambda rng: np.concatenate([rng.integers(0, 256, (37, 53, 3)), np.full((37, 53, 1), 255)], 2).astype(np.uint8),
])
def test_bgr_frames_become_rgb(make):
    """What a capture or a decoder hands over in BGR order comes out as the same pixels in RGB."""
    img = make(np.random.default_rng(0))
    rgb = to_rgb_uint8(img, bgr=True)
    want = to_rgb_uint8(img)[:, :, ::-1]
    assert rgb.flags.c_contiguous and rgb.dtype == np.uint8 and np.array_equal(rgb, want)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "JPEG"])
def test_phone_photos_come_out_upright_whatever_the_container(fmt):
    """EXIF orientation 6 (turn 90 degrees clockwise to show) in PNG (eXIf), WebP (EXIF), TIFF and
    JPEG: the white block stored top-left is shown top-right, once (OpenCV turns JPEG and TIFF
    itself, sitelens PNG and WebP)."""
    import io

    from PIL import Image

    img = np.zeros((80, 120, 3), np.uint8)
    img[:20, :40] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    out = load_image(buf.getvalue())
    assert out.shape == (120, 80, 3)
    white = np.argwhere(out[:, :, 0] > 128)
    assert white[:, 0].max() < 45 and white[:, 1].min() > 55       # top right


def test_what_cannot_be_sized_is_not_decoded(tmp_path, monkeypatch):
    """A file whose size the header does not tell (junk before a JPEG's SOI, PNM, HDR, PFM, HEIC, ...)
    is refused before decoding: OpenCV would decode it whole to find out (a few hundred bytes of
    PNM header can claim gigabytes). Files larger than an image within the limit are not read."""
    jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    pnm = b"P6\n60000 60000\n255\n" + bytes(600)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    for data, message in ((b"\x00" + jpeg, "unsupported image format or a damaged header"),
                          (pnm, "unsupported image format"), (heic, "HEIC/HEIF.*convert it to JPEG")):
        path = tmp_path / "x.img"
        path.write_bytes(data)
        with pytest.raises(ImageError, match=message) as err:
            load_image(path)
        assert str(path) in str(err.value)
    monkeypatch.setenv("SITELENS_MAX_PIXELS", "10000")
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg + bytes(2_000_000))
    with pytest.raises(ImageError, match="file of 2 MB, above the 1 MB an image within the pixel limit needs"):
        load_image(big)


def test_blank_references_are_those_without_texture_in_any_channel():
    from runtime.image.image_io import BLANK_STD, is_blank

    rng = np.random.default_rng(0)
    flat = np.full((120, 90, 3), (200, 40, 90), np.uint8)             # any colour, no texture
    faint = np.clip(128 + rng.normal(0, BLANK_STD / 2, (120, 90, 3)), 0, 255).astype(np.uint8)
    one_channel = flat.copy()
    one_channel[:, ::2, 2] = 0                                        # texture in the blue channel only
    assert is_blank(flat) and is_blank(faint) and is_blank(flat[:, :, 0])
    assert not is_blank(one_channel) and not is_blank(one_channel[::-1, 1:])   # a view too
