"""backtest_png - small PNG charts in pure Python (standard library only).

Used by scripts/backtest for its fan charts and error-by-step charts; no
plotting package (matplotlib, numpy) is needed on the machines that run it.

    c = Canvas(640, 360)                       # RGB, white
    c.line(10, 10, 200, 80, (200, 0, 0), width=2)
    c.text(12, 12, "MAE 1.5", (0, 0, 0))       # 5x7 bitmap font, upper case
    c.save("out.png")                          # 8-bit RGB, one IDAT, zlib

    ch = Chart(640, 360, "BTCUSDT h=64")       # axes, nice ticks, legend
    ch.band(xs, lo, hi, (190, 210, 240), "10-90%")
    ch.line(xs, ys, (30, 80, 200), "median")
    ch.points(xs, ys, (0, 0, 0), "actual")
    ch.save("fan.png")

None in a series of values breaks a line or a band there. The PNG is written
with zlib (deflate) and struct: signature, IHDR (8-bit RGB, no interlace),
one IDAT (each row prefixed by filter byte 0), IEND, each with its CRC-32.
"""

import math
import struct
import zlib

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (120, 120, 120)
LIGHT = (225, 225, 225)

# A 5x7 bitmap font: seven rows of five bits (bit 4 is the leftmost pixel).
# Lower case is drawn in upper case; an unknown character as '?'.
FONT = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    " ": (0, 0, 0, 0, 0, 0, 0),
    ".": (0, 0, 0, 0, 0, 0x0C, 0x0C),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    "-": (0, 0, 0, 0x1F, 0, 0, 0),
    "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    ";": (0, 0x0C, 0x0C, 0, 0x0C, 0x04, 0x08),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "[": (0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E),
    "]": (0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 0x1F),
    "<": (0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02),
    ">": (0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08),
    "*": (0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0),
    "#": (0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A),
    "'": (0x0C, 0x04, 0x08, 0, 0, 0, 0),
    "|": (0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
    "!": (0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04),
}
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6


def png_bytes(width, height, rgb):
    """An 8-bit RGB PNG of width x height from rgb (bytes, row-major, 3 per pixel)."""
    if len(rgb) != width * height * 3:
        raise ValueError("expected %d bytes of RGB, got %d" % (width * height * 3, len(rgb)))
    stride = width * 3
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type 0 (None) for every row
        raw += rgb[y * stride:(y + 1) * stride]

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # depth 8, colour type 2 (RGB)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


class Canvas:
    """An RGB raster with lines, rectangles, bands, markers and 5x7 text."""

    def __init__(self, width, height, background=WHITE):
        self.width, self.height = int(width), int(height)
        self.pixels = bytearray(bytes(background) * (self.width * self.height))

    def set(self, x, y, colour):
        x, y = int(x), int(y)
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(colour)

    def get(self, x, y):
        i = (int(y) * self.width + int(x)) * 3
        return tuple(self.pixels[i:i + 3])

    def rect(self, x0, y0, x1, y1, colour):
        """Fills the rectangle with corners (x0, y0) and (x1, y1), both included."""
        x0, x1 = sorted((int(round(x0)), int(round(x1))))
        y0, y1 = sorted((int(round(y0)), int(round(y1))))
        x0, x1 = max(x0, 0), min(x1, self.width - 1)
        y0, y1 = max(y0, 0), min(y1, self.height - 1)
        if x0 > x1 or y0 > y1:
            return
        row = bytes(colour) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            i = (y * self.width + x0) * 3
            self.pixels[i:i + len(row)] = row

    def line(self, x0, y0, x1, y1, colour, width=1):
        """A straight line (Bresenham), width pixels thick."""
        x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        lo, hi = -((width - 1) // 2), width // 2
        while True:
            if width == 1:
                self.set(x0, y0, colour)
            else:
                self.rect(x0 + lo, y0 + lo, x0 + hi, y0 + hi, colour)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def dashed(self, x0, y0, x1, y1, colour, dash=4):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for k in range(0, int(n) + 1):
            if (k // dash) % 2 == 0:
                t = k / n
                self.set(round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0)), colour)

    def polyline(self, points, colour, width=1):
        """Connects consecutive points; a None point breaks the line."""
        prev = None
        for p in points:
            if p is None:
                prev = None
                continue
            if prev is not None:
                self.line(prev[0], prev[1], p[0], p[1], colour, width)
            else:
                self.line(p[0], p[1], p[0], p[1], colour, width)
            prev = p

    def band(self, xs, lo, hi, colour):
        """Fills between two polylines sharing xs (pixel coordinates), column by column."""
        for i in range(len(xs) - 1):
            if None in (lo[i], hi[i], lo[i + 1], hi[i + 1]):
                continue
            xa, xb = xs[i], xs[i + 1]
            if xb < xa:
                xa, xb = xb, xa
            for x in range(int(math.ceil(xa)), int(math.floor(xb)) + 1):
                t = 0.0 if xb == xa else (x - xs[i]) / (xs[i + 1] - xs[i])
                y0 = lo[i] + t * (lo[i + 1] - lo[i])
                y1 = hi[i] + t * (hi[i + 1] - hi[i])
                self.rect(x, y0, x, y1, colour)

    def marker(self, x, y, colour, radius=2):
        self.rect(x - radius, y - radius, x + radius, y + radius, colour)

    @staticmethod
    def text_width(text, scale=1):
        return max(len(text) * ADVANCE - 1, 0) * scale

    def text(self, x, y, text, colour=BLACK, scale=1):
        """Draws text with its top-left corner at (x, y), in the 5x7 font."""
        x, y = int(round(x)), int(round(y))
        for ch in str(text):
            rows = FONT.get(ch.upper(), FONT["?"])
            for r, bits in enumerate(rows):
                for c in range(GLYPH_W):
                    if bits & (0x10 >> c):
                        if scale == 1:
                            self.set(x + c, y + r, colour)
                        else:
                            self.rect(x + c * scale, y + r * scale,
                                      x + c * scale + scale - 1, y + r * scale + scale - 1, colour)
            x += ADVANCE * scale

    def png(self):
        return png_bytes(self.width, self.height, bytes(self.pixels))

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.png())


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def fmt_tick(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return "%.2g" % v
    s = "%.6f" % v
    return s.rstrip("0").rstrip(".")


class Chart:
    """A line chart: axes with nice ticks, a title, axis labels and a legend."""

    def __init__(self, width=720, height=400, title="", xlabel="", ylabel="", include_y=()):
        self.width, self.height = width, height
        self.include_y = list(include_y)  # y values the axis must show (e.g. 0)
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.items = []  # (kind, xs, ys, extra, colour, label)
        self.left, self.right, self.top, self.bottom = 70, 16, 44, 44

    def line(self, xs, ys, colour, label=None, width=2):
        self.items.append(("line", list(xs), list(ys), width, colour, label))

    def dashed_line(self, xs, ys, colour, label=None):
        self.items.append(("dashed", list(xs), list(ys), None, colour, label))

    def points(self, xs, ys, colour, label=None, radius=2):
        self.items.append(("points", list(xs), list(ys), radius, colour, label))

    def band(self, xs, lo, hi, colour, label=None):
        self.items.append(("band", list(xs), list(lo), list(hi), colour, label))

    def vline(self, x, colour, label=None):
        self.items.append(("vline", [x], [], None, colour, label))

    def _ranges(self):
        xs, ys = [], []
        for kind, ix, iy, extra, _, _ in self.items:
            xs += [v for v in ix if v is not None]
            if kind == "band":
                ys += [v for v in iy + extra if v is not None]
            else:
                ys += [v for v in iy if v is not None]
        ys = [v for v in ys if math.isfinite(v)]
        if ys:
            ys += self.include_y
        if not xs:
            xs = [0.0, 1.0]
        if not ys:
            ys = [0.0, 1.0]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        if x1 == x0:
            x0, x1 = x0 - 1, x1 + 1
        if y1 == y0:
            pad = abs(y0) * 0.05 or 1.0
            y0, y1 = y0 - pad, y1 + pad
        pad = (y1 - y0) * 0.05
        return x0, x1, (y0 if y0 in self.include_y else y0 - pad), y1 + pad

    def render(self):
        c = Canvas(self.width, self.height)
        x0, x1, y0, y1 = self._ranges()
        L, R = self.left, self.width - self.right
        T, B = self.top, self.height - self.bottom
        px = lambda x: L + (x - x0) / (x1 - x0) * (R - L)
        py = lambda y: B - (y - y0) / (y1 - y0) * (B - T)

        for t in nice_ticks(y0, y1, 5):
            if y0 <= t <= y1:
                y = round(py(t))
                c.line(L, y, R, y, LIGHT)
                label = fmt_tick(t)
                c.text(L - 6 - Canvas.text_width(label), y - 3, label, GREY)
        for t in nice_ticks(x0, x1, 8):
            if x0 <= t <= x1:
                x = round(px(t))
                c.line(x, B, x, B + 3, GREY)
                label = fmt_tick(t)
                c.text(x - Canvas.text_width(label) // 2, B + 6, label, GREY)
        c.line(L, T, L, B, GREY)
        c.line(L, B, R, B, GREY)

        for kind, xs, ys, extra, colour, _ in self.items:
            if kind == "band":
                c.band([px(x) for x in xs], [None if v is None else py(v) for v in ys],
                       [None if v is None else py(v) for v in extra], colour)
        for kind, xs, ys, extra, colour, _ in self.items:
            if kind == "line":
                c.polyline([None if (x is None or y is None) else (px(x), py(y))
                            for x, y in zip(xs, ys)], colour, extra)
            elif kind == "dashed":
                prev = None
                for x, y in zip(xs, ys):
                    p = None if (x is None or y is None) else (px(x), py(y))
                    if p and prev:
                        c.dashed(prev[0], prev[1], p[0], p[1], colour)
                    prev = p
            elif kind == "points":
                for x, y in zip(xs, ys):
                    if x is not None and y is not None:
                        c.marker(px(x), py(y), colour, extra)
            elif kind == "vline":
                x = px(xs[0])
                c.dashed(x, T, x, B, colour)

        c.text(L, 8, self.title, BLACK, 2 if Canvas.text_width(self.title, 2) < R - L else 1)
        if self.xlabel:
            c.text((L + R) // 2 - Canvas.text_width(self.xlabel) // 2, self.height - 14,
                   self.xlabel, BLACK)
        if self.ylabel:
            c.text(4, T - 14, self.ylabel, BLACK)
        # The legend: one row under the title, right-aligned, outside the plot area.
        labelled = [(kind, colour, label) for kind, _, _, _, colour, label in self.items if label]
        x = R - sum(Canvas.text_width(l) + 34 for _, _, l in labelled) + 10
        yy = T - 14
        for kind, colour, label in labelled:
            if kind == "band":
                c.rect(x, yy, x + 14, yy + 6, colour)
            elif kind == "points":
                c.marker(x + 7, yy + 3, colour, 2)
            elif kind in ("dashed", "vline"):
                c.dashed(x, yy + 3, x + 14, yy + 3, colour, 2)
            else:
                c.line(x, yy + 3, x + 14, yy + 3, colour, 2)
            c.text(x + 18, yy, label, BLACK)
            x += Canvas.text_width(label) + 34
        return c

    def save(self, path):
        self.render().save(path)
