"""A JPEG's size and EXIF orientation read from its markers, for the training pictures' headers
that a folder's opening reads (sources._header): what Pillow's Image.open and getexif() give, at a
fraction of their time. Pillow parses every marker segment before the picture's data in Python
(quantization and Huffman tables included) and builds an Image: about 35-40 µs a file here, which
made the largest part of a 4,000-file folder's start-up and grows with the files (18,000 headers:
two thirds of a second). This reads only the segments it needs.

Anything it does not expect is left to Pillow (None): a file that is not a baseline, progressive
or lossless JPEG with a plain EXIF orientation, or whose markers it cannot walk to the frame's
size. Pillow stays the judge of what is a readable picture.
"""

import os
import struct

_SOI = b"\xff\xd8\xff"
# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic coded):
# every 0xC0-0xCF but DHT (C4), JPG (C8) and DAC (CC).
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_START_OF_SCAN = 0xDA
# Markers with no length after them: TEM, and the restart markers RST0-RST7.
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_APP1 = 0xE1
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_ORIENTATION_TAG = 0x0112
_SHORT = 3
# What is read first: the markers before a frame are mostly a few kilobytes (a camera's EXIF with
# its thumbnail, up to 64 KB, is read on in steps of _FURTHER_READS). Reading 64 KB at once took
# twice as long as 4 KB here.
_FIRST_READ = 1 << 12
_FURTHER_READS = 1 << 16


def read(path):
    """(height, width, EXIF orientation) of the JPEG file at `path`, as Pillow's Image.open and
    getexif()'s 0x0112 give them (orientation 1 where there is none); None for a file this does
    not read to the end of its header (not a JPEG, or not a plain one: see the module's docstring)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)  # unbuffered: a file object's buffer costs as much as the parsing
    except OSError:
        return None
    try:
        return _walk(descriptor, os.read(descriptor, _FIRST_READ))
    except (OSError, struct.error, ValueError):
        return None
    finally:
        os.close(descriptor)


def _walk(descriptor, data):
    """Pillow's walk over the markers up to the first scan: the size of the last frame, the
    orientation of the first EXIF segment."""
    if not data.startswith(_SOI):
        return None
    orientation = frame = None
    xmp = False
    offset = 2
    while True:
        if len(data) < offset + 4:
            data = _more(descriptor, data, offset + 4)
        marker = data[offset + 1]
        if data[offset] != 0xFF or marker < 0xC0:
            return None  # junk between segments, or a marker Pillow skips over: left to Pillow
        if marker == 0xFF:  # a fill byte before a marker
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        if marker == _START_OF_SCAN:
            break
        (length,) = struct.unpack_from(">H", data, offset + 2)
        end = offset + 2 + length
        if length < 2:
            return None
        if marker in _FRAMES or marker == _APP1:
            if len(data) < end:
                data = _more(descriptor, data, end)
            segment = data[offset + 4:end]
            if marker != _APP1:
                bits, height, width, layers = struct.unpack_from(">BHHB", segment)
                if bits != 8 or layers not in (1, 3, 4):
                    return None  # Pillow cannot open it
                frame = (height, width)
            elif segment.startswith(_EXIF):
                if orientation is not None:
                    return None  # EXIF in more than one segment, which Pillow joins
                orientation = _orientation(segment[len(_EXIF):])
                if orientation is None:
                    return None
            elif segment.startswith(_XMP):
                xmp = True
        offset = end
    if frame is None or (xmp and orientation in (None, 0)):
        return None  # no frame; or Pillow may take the orientation from XMP, which this does not read
    return (*frame, orientation or 1)


def _more(descriptor, data, needed):
    """`data` (the file's first bytes) extended to at least `needed` bytes; ValueError at the file's end."""
    while len(data) < needed:
        more = os.read(descriptor, max(needed - len(data), _FURTHER_READS))
        if not more:
            raise ValueError("the file ends inside its header")
        data += more
    return data


def _orientation(tiff):
    """IFD0's orientation in a TIFF structure (EXIF's): 0 where it has none; None where it is not
    one plain SHORT (left to Pillow)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    magic, first = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42:
        return None
    (entries,) = struct.unpack_from(order + "H", tiff, first)
    for entry in range(entries):
        tag, kind, count = struct.unpack_from(order + "HHI", tiff, first + 2 + 12 * entry)
        if tag == _ORIENTATION_TAG:
            if kind != _SHORT or count != 1:
                return None
            (value,) = struct.unpack_from(order + "H", tiff, first + 2 + 12 * entry + 8)
            return value
    return 0  # none in IFD0
