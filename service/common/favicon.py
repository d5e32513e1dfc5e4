"""The site's icon, drawn in code (no binary file in the repository): a 32 x 32 ICO, the service's
blue with a white "F", served at /favicon.ico."""

from __future__ import annotations

import functools
import struct

SIZE = 32
BLUE, WHITE = (0x0B, 0x5C, 0xAD), (0xFF, 0xFF, 0xFF)


def _pixel(x: int, y: int) -> tuple[int, int, int, int]:
    """RGBA of the pixel at column x, row y (from the top): a rounded blue square with an F."""
    corner = 5
    dx, dy = min(x, SIZE - 1 - x), min(y, SIZE - 1 - y)
    if dx < corner and dy < corner and (corner - dx) ** 2 + (corner - dy) ** 2 > corner**2:
        return (0, 0, 0, 0)
    stem = 10 <= x < 15 and 7 <= y < 26
    top = 10 <= x < 24 and 7 <= y < 12
    bar = 10 <= x < 21 and 15 <= y < 19
    return (*(WHITE if stem or top or bar else BLUE), 255)


@functools.cache
def favicon_ico() -> bytes:
    rows = []
    for y in reversed(range(SIZE)):  # a BMP is stored bottom-up
        rows.append(b"".join(struct.pack("BBBB", b, g, r, a) for r, g, b, a in (_pixel(x, y) for x in range(SIZE))))
    pixels = b"".join(rows)
    mask = b"\x00" * (SIZE * SIZE // 8)  # the AND mask: all visible (the alpha channel decides)
    header = struct.pack("<IiiHHIIiiII", 40, SIZE, SIZE * 2, 1, 32, 0, len(pixels) + len(mask), 0, 0, 0, 0)
    image = header + pixels + mask
    directory = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(image), 6 + 16)
    return directory + image
