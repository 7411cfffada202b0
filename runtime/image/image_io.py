"""Reading images from paths, encoded bytes or arrays into RGB uint8 arrays.

Handles EXIF orientation (JPEG, PNG, WebP, TIFF: phone photos come out upright whatever the
container), grayscale, RGBA (composited over white), 16-bit and float images. This is the single
definition used by training, export and the device.

Limits, checked before anything is decoded (``image/image_header.py``): images above ``max_pixels()``
(default 50 MP; ``SITELENS_MAX_PIXELS`` or ``set_max_pixels``), images whose shorter side is under
``MIN_SIDE`` pixels (too small to describe), files over ``max_file_bytes()``, and files whose size
cannot be read from their header (a format sitelens does not know, or junk before the header:
decoding them to find out would let a few hundred bytes claim gigabytes) raise ``ImageError``
naming the file. HEIC, AVIF and JPEG 2000 are named in the error, with what to convert them to.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from runtime.errors import ImageError
from runtime.image.image_header import exif_orientation, foreign_format, image_size

ImageLike = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 32
_max_pixels: int | None = None


def max_pixels() -> int:
    """The pixel limit in force: ``set_max_pixels``, else ``SITELENS_MAX_PIXELS``, else 50 MP."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("SITELENS_MAX_PIXELS")
    if env:
        try:
            return max(1, int(float(env)))
        except ValueError:
            raise ImageError(f"SITELENS_MAX_PIXELS={env!r} is not a number of pixels") from None
    return DEFAULT_MAX_PIXELS


def set_max_pixels(limit: int | None) -> None:
    """Change the pixel limit for this process (None: back to the environment/default)."""
    global _max_pixels
    if limit is not None and int(limit) < 1:
        raise ValueError(f"pixel limit must be positive, got {limit}")
    _max_pixels = None if limit is None else int(limit)


def max_file_bytes() -> int:
    """The largest encoded file read: 8 bytes a pixel of the pixel limit (16-bit RGBA, stored
    without compression), plus 1 MiB of headers and metadata."""
    return 8 * max_pixels() + (1 << 20)


def check_dimensions(width: int, height: int, source: str) -> None:
    """Raise ImageError for images too large to decode safely or too small to describe."""
    limit = max_pixels()
    if width * height > limit:
        raise ImageError(f"{source}: image is {width}x{height} = {width * height / 1e6:.1f} MP, above the "
                         f"{limit / 1e6:g} MP limit (downscale it, or raise SITELENS_MAX_PIXELS)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{source}: image is {width}x{height}, too small to describe (shorter side under "
                         f"{MIN_SIDE} px)")


def to_rgb_uint8(img: np.ndarray, source: str = "array", bgr: bool = False) -> np.ndarray:
    """Normalise an H x W (x C) array of any common dtype to H x W x 3 uint8 RGB."""
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or img.size == 0:
        shape = getattr(img, "shape", None)
        raise ImageError(f"{source}: expected an H x W or H x W x C image array, got shape {shape}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(img)) <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if channels == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        rgb = img[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        img = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    elif channels != 3:
        raise ImageError(f"{source}: unsupported number of channels ({channels})")
    if bgr:  # OpenCV's channel swap: one pass over the frame, where numpy's reversed-stride copy is several
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def jpeg_reduction(width: int, height: int, need: tuple[int, int] | None) -> int:
    """Largest JPEG decode reduction (1, 2, 4, 8) that still leaves ``need`` = (shorter side,
    longer side) pixels: libjpeg then decodes at 1/r scale in the DCT domain, r^2 times less work."""
    if not need:
        return 1
    short, long_ = min(width, height), max(width, height)
    for r in (8, 4, 2):
        if short // r >= need[0] and long_ // r >= need[1]:
            return r
    return 1


def _checked_size(data: bytes, source: str) -> tuple[int, int]:
    """(width, height) from an encoded image's header, within the pixel limit, or ImageError."""
    if not data:
        raise ImageError(f"{source}: empty file, not an image")
    size = image_size(data)
    if size is None:
        foreign = foreign_format(data)
        raise ImageError(f"{source}: unsupported image format{': ' + foreign if foreign else ''}"
                         + ("" if foreign else " or a damaged header (sitelens reads JPEG, PNG, WebP, TIFF, BMP "
                                                "and GIF, and refuses files whose size it cannot read before decoding)"))
    check_dimensions(size[0], size[1], source)
    return size


def probe_image(path) -> tuple[int, int]:
    """(width, height) of an image file from its header, checked as ``load_image`` checks it
    before decoding (size, format, pixel limit), without decoding: for checking many files
    before long work starts. A file that passes can still be truncated past its header."""
    path = Path(path)
    return _checked_size(_read_file(path), str(path))


def _read_file(path: Path) -> bytes:
    """An image file's bytes, refused above ``max_file_bytes`` before reading; ImageError naming it."""
    try:
        if path.stat().st_size > max_file_bytes():
            raise ImageError(f"{path}: file of {path.stat().st_size / 1e6:.0f} MB, above the "
                             f"{max_file_bytes() / 1e6:.0f} MB an image within the pixel limit needs")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from None


def decode_image(data: bytes, source: str = "<bytes>", need: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, WebP, TIFF, BMP) to RGB uint8. ``need``: the (shorter,
    longer) side the caller will use; a JPEG larger than that is decoded at a reduced scale."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(data) > max_file_bytes():
        raise ImageError(f"{source}: file of {len(data) / 1e6:.0f} MB, above the {max_file_bytes() / 1e6:.0f} MB an "
                         "image within the pixel limit needs")
    size = _checked_size(data, source)
    reduction = jpeg_reduction(*size, need) if data[:2] == b"\xff\xd8" else 1
    if reduction > 1:
        flags = _REDUCED[reduction]  # applies the EXIF orientation as a full decode does
    elif data[:2] == b"\xff\xd8":
        # JPEG: no alpha; let OpenCV apply the EXIF orientation, keep grayscale/16-bit info.
        flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    else:
        flags = cv2.IMREAD_UNCHANGED  # keeps alpha (composited later) and 16-bit
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # pragma: no cover - OpenCV raises on some corrupt headers
        raise ImageError(f"{source}: cannot decode image ({exc.msg.strip()})") from exc
    if img is None:
        raise ImageError(f"{source}: cannot decode image (unsupported format or truncated file)")
    check_dimensions(img.shape[1], img.shape[0], source)  # what was decoded, in case the header lied
    if flags == cv2.IMREAD_UNCHANGED:  # OpenCV ignores EXIF orientation in this mode
        img = _oriented(img, exif_orientation(data))
    return to_rgb_uint8(img, source, bgr=True)


def _oriented(img: np.ndarray, orientation: int) -> np.ndarray:
    """The image as it is meant to be shown, for EXIF orientation 1-8."""
    if orientation == 1:
        return img
    flip = orientation in (2, 4, 5, 7)
    turns = {2: 0, 3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}[orientation]  # counter-clockwise quarter turns
    if orientation in (5, 7):
        img = np.fliplr(img)
        flip = False
    out = np.rot90(img, turns)
    return np.ascontiguousarray(np.fliplr(out) if flip else out)


def load_image(image: ImageLike, need: tuple[int, int] | None = None) -> np.ndarray:
    """Load a path, encoded bytes or an RGB array as an H x W x 3 uint8 RGB array.

    Arrays are taken as RGB (grayscale, RGBA, uint16 and float in [0, 1] are accepted) and never
    copied when they already are contiguous uint8 RGB. ``need`` = (shorter, longer) side in pixels
    the caller will use: JPEGs are then decoded at a reduced scale when they are much larger.
    """
    if isinstance(image, np.ndarray):
        if image.ndim in (2, 3) and image.size:
            check_dimensions(image.shape[1], image.shape[0], "array")
        return to_rgb_uint8(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), need=need)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        return decode_image(_read_file(path), str(path), need)
    raise ImageError(f"cannot read an image from a {type(image).__name__}")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


BLANK_STD = 6.0  # pixel standard deviation under which a reference is "a plain wall"


def is_blank(img: np.ndarray) -> bool:
    """A reference with almost no texture (a blank or uniform image, whatever its colour: the
    standard deviation of every channel under ``BLANK_STD``) identifies nothing and would match
    every plain wall. OpenCV's one pass over the pixels: numpy's ``std`` made a float64 copy of a
    full-resolution reference first, for every reference of a build."""
    return float(cv2.meanStdDev(np.ascontiguousarray(img))[1].max()) < BLANK_STD


def file_digest(path) -> str:
    """sha256 of an image file's bytes (a rebuild reuses the index rows of unchanged files)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()
