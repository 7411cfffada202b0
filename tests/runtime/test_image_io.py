import struct

import cv2
import numpy as np
import pytest

from runtime.errors import ImageError
from runtime.image_io import load_image, to_rgb_uint8


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
    gray = np.full((10, 12), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    assert load_image(tmp_path / "g.png").shape == (10, 12, 3)
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent -> white
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert (load_image(tmp_path / "a.png") == 255).all()
    deep = np.full((6, 6, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    out = load_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and (out == 255).all()


def test_bytes_array_and_float():
    img = np.random.default_rng(0).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    ok, enc = cv2.imencode(".png", img[:, :, ::-1])
    np.testing.assert_array_equal(load_image(enc.tobytes()), img)
    np.testing.assert_array_equal(load_image(img), img)
    assert load_image(np.ones((4, 4), np.float32)).max() == 255


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"not an image at all", "cannot decode"),
                                              (b"\xff\xd8\xff\xe0garbage", "cannot decode")])
def test_bad_files_name_the_path(tmp_path, content, message):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_missing_file_and_bad_type(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError):
        load_image(12)
    with pytest.raises(ImageError, match="channels"):
        to_rgb_uint8(np.zeros((4, 4, 5), np.uint8))
