"""keras_resnet.data.jpeg_headers against Pillow, which it stands in for when a folder's training
pictures' headers are read: on every JPEG it reads, the size and EXIF orientation that Pillow's
Image.open and getexif() give; the others left to Pillow."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from keras_resnet.data import jpeg_headers, sources


def pillow_header(path):
    with Image.open(path) as image:
        return image.height, image.width, image.getexif().get(0x0112, 1)


def exif_segment(orientation, *, big_endian=False, other_tags=2):
    """An EXIF APP1 payload whose IFD0 holds `other_tags` other SHORT tags, then the orientation
    (None: none)."""
    order = ">" if big_endian else "<"
    tags = [(0x0100 + number, 3, 1, 7) for number in range(other_tags)]
    if orientation is not None:
        tags.append((0x0112, 3, 1, orientation))
    ifd = struct.pack(order + "H", len(tags)) + b"".join(struct.pack(order + "HHIHH", tag, kind, count, value, 0) for tag, kind, count, value in tags)
    return b"Exif\x00\x00" + (b"MM" if big_endian else b"II") + struct.pack(order + "HI", 42, 8) + ifd + struct.pack(order + "I", 0)


def with_segments(jpeg, *segments, before_frame=True):
    """`jpeg`'s bytes with APPn `segments` ((marker, payload)) put straight after its SOI marker, or
    just before its first scan."""
    packed = b"".join(bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload for marker, payload in segments)
    at = 2 if before_frame else jpeg.index(b"\xff\xda")
    return jpeg[:at] + packed + jpeg[at:]


def jpeg(height, width, *, mode="RGB", **options):
    picture = Image.fromarray(np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    stream = io.BytesIO()
    picture.save(stream, format="JPEG", **options)
    return stream.getvalue()


def cases():
    plain = jpeg(37, 53)
    yield "plain", plain, True
    yield "gray", jpeg(20, 90, mode="L"), True
    yield "cmyk", jpeg(31, 17, mode="CMYK"), True
    yield "progressive", jpeg(64, 48, progressive=True, optimize=True), True
    yield "restart markers", jpeg(40, 40, restart_marker_blocks=1), True
    for orientation in range(1, 9):
        yield f"exif {orientation}", with_segments(plain, (0xE1, exif_segment(orientation))), True
        yield f"exif {orientation} big-endian", with_segments(plain, (0xE1, exif_segment(orientation, big_endian=True, other_tags=5))), True
    yield "exif without orientation", with_segments(plain, (0xE1, exif_segment(None))), True
    yield "exif after the frame", with_segments(plain, (0xE1, exif_segment(6)), before_frame=False), True
    # The frame past the first read (64 KB): segments before it read from the file.
    yield "frame past 64 KB", with_segments(plain, (0xE2, b"ICC_PROFILE\x00" + bytes(60_000)), (0xE1, exif_segment(8)), (0xED, bytes(30_000))), True
    yield "fill bytes", plain[:2] + b"\xff\xff" + plain[2:], True
    xmp = b"http://ns.adobe.com/xap/1.0/\x00" + b'<x:xmpmeta><rdf:Description tiff:Orientation="3"/></x:xmpmeta>'
    yield "xmp orientation", with_segments(plain, (0xE1, xmp)), False  # Pillow reads it: left to Pillow
    yield "xmp, exif orientation", with_segments(plain, (0xE1, exif_segment(5)), (0xE1, xmp)), True
    yield "two exif segments", with_segments(plain, (0xE1, exif_segment(2)), (0xE1, exif_segment(4))), False
    yield "exif orientation not a short", with_segments(plain, (0xE1, exif_segment(6).replace(b"\x12\x01\x03\x00", b"\x12\x01\x04\x00"))), False
    yield "cut in the header", plain[:60], False
    yield "junk between segments", plain[:2] + b"\x00\x00" + plain[2:], False


@pytest.mark.parametrize("name, data, read_here", list(cases()), ids=[case[0] for case in cases()])
def test_a_jpeg_header_reads_as_pillow_reads_it(tmp_path, name, data, read_here):
    path = tmp_path / "picture.jpg"
    path.write_bytes(data)
    header = jpeg_headers.read(path)
    assert (header is not None) == read_here
    try:
        expected = pillow_header(path)
    except Exception:  # Pillow cannot open it
        expected = None
    if read_here:
        assert header == expected
    # What a folder's opening keeps of it either way (the others through Pillow): Pillow's.
    kept = sources._header(str(path))
    if expected is None:
        assert kept is None
    else:
        orientation = expected[2] if expected[2] in range(1, 9) else 1
        assert (kept.size, kept.orientation, kept.jpeg) == (expected[:2], orientation, True)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n" + bytes(40), b"GIF89a" + bytes(20)], ids=["empty", "png", "gif"])
def test_what_is_not_a_jpeg_is_left_to_pillow(tmp_path, data):
    path = tmp_path / "picture.jpg"
    path.write_bytes(data)
    assert jpeg_headers.read(path) is None
    assert jpeg_headers.read(tmp_path / "missing.jpg") is None
