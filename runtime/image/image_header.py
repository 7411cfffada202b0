"""Image width and height from the first bytes of an encoded file, without decoding it.

Used to refuse oversized images before a full decode, and to pick a reduced-scale JPEG decode.
Knows JPEG, PNG, GIF, BMP, WebP and TIFF; returns None for anything else, and the caller refuses
to decode what it cannot size (an image must never be decoded to learn that it is too large).
Also reads the EXIF orientation of PNG (``eXIf``) and WebP (``EXIF``) files, which OpenCV ignores
when it keeps alpha and 16-bit samples (``IMREAD_UNCHANGED``; it applies JPEG's and TIFF's
itself), and names the formats
sitelens refuses by their signature (HEIC/HEIF, AVIF, JPEG 2000, ...).
"""
from __future__ import annotations

import struct

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image, or None if the format or header is not recognised."""
    try:
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(end + "I", data[4:8])
    (count,) = struct.unpack(end + "H", data[offset:offset + 2])
    size: dict[int, int] = {}
    for k in range(min(count, 512)):
        entry = data[offset + 2 + 12 * k: offset + 14 + 12 * k]
        tag, kind = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257):
            value = struct.unpack(end + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
            size[tag] = value
    if 256 in size and 257 in size:
        return size[256], size[257]
    return None


_FOREIGN = ((4, (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypheim", b"ftypheis", b"ftypmif1", b"ftypmsf1"),
             "HEIC/HEIF (the iPhone's default): convert it to JPEG (iPhone: Settings > Camera > Formats > "
             "Most Compatible)"),
            (4, (b"ftypavif", b"ftypavis"), "AVIF: convert it to JPEG or PNG"),
            (0, (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"), "JPEG 2000: convert it to JPEG or PNG"))


def foreign_format(data: bytes) -> str | None:
    """A sentence naming a known image format sitelens does not read, or None."""
    for offset, signatures, what in _FOREIGN:
        if any(data[offset:offset + len(sig)] == sig for sig in signatures):
            return what
    return None


def exif_orientation(data: bytes) -> int:
    """EXIF orientation (1-8; 1 = as stored) of a PNG or WebP file; 1 when absent or unreadable."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            blob = _png_chunk(data, b"eXIf")
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            blob = _riff_chunk(data, b"EXIF")
        else:
            return 1
        if blob is None:
            return 1
        if blob[:6] == b"Exif\x00\x00":
            blob = blob[6:]
        value = _ifd0_short(blob, 0x0112)
        return value if value in range(1, 9) else 1
    except (struct.error, IndexError, ValueError):
        return 1


def _png_chunk(data: bytes, kind: bytes) -> bytes | None:
    i = 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] == kind:
            return data[i + 8:i + 8 + length]
        if data[i + 4:i + 8] in (b"IDAT", b"IEND"):  # eXIf comes before the image data
            return None
        i += 12 + length
    return None


def _riff_chunk(data: bytes, kind: bytes) -> bytes | None:
    i = 12
    while i + 8 <= len(data):
        (length,) = struct.unpack("<I", data[i + 4:i + 8])
        if data[i:i + 4] == kind:
            return data[i + 8:i + 8 + length]
        i += 8 + length + (length & 1)
    return None


def _ifd0_short(tiff: bytes, tag: int) -> int | None:
    end = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack(end + "I", tiff[4:8])
    (count,) = struct.unpack(end + "H", tiff[offset:offset + 2])
    for k in range(min(count, 512)):
        entry = tiff[offset + 2 + 12 * k: offset + 14 + 12 * k]
        if struct.unpack(end + "H", entry[:2])[0] == tag:
            return struct.unpack(end + "H", entry[8:10])[0]
    return None
