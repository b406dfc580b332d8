#!/usr/bin/env python3
# Draw the hardware guide's schematics: every docs/schematics/*.sch (a small text layout of
# parts and wires, described below) becomes the .svg beside it. The output is deterministic,
# so a test can regenerate it and compare with the committed file.
#
#   python3 docs/schematics/draw.py            write the SVGs
#   python3 docs/schematics/draw.py --check    exit 1 if any committed SVG is out of date
#
# The .sch format: one statement per line, "#" starts a comment, coordinates in grid units
# (10 px). Quoted strings may hold spaces.
#   title "text"                         size W H
#   res|cap NAME X Y h|v "label"          pins 1, 2 (left/top, right/bottom), length 4
#   diode|zener|led NAME X Y r|l|d|u "label"   anode at X,Y, cathode 4 units in that direction
#   opto NAME X Y "label"                 8 x 6 box: pins a, k (left), c, e (right)
#   npn NAME X Y "label"                  pins b (X,Y), c (X+3,Y-3), e (X+3,Y+3)
#   conn NAME X Y "title" "1:name" ...    pins numbered, 2 units apart, on the right edge
#   ic NAME X Y W "title" left="A,B:label" right="C,D"   pins by name (optionally
#                                         name:label), 2 units apart; an empty name skips a row
#   gnd X Y ["label"]   supply X Y "label"   dot X Y   text X Y "text" [start|middle|end]
#   note X Y "text"     (small grey text)    box X Y W H "title"  (dashed region)
#   wire P P ...  P = X,Y or NAME.PIN; a "|" before a point routes vertical-first to it
import os
import shlex
import sys

U = 10
HERE = os.path.dirname(os.path.abspath(__file__))
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def fmt(v):
    v = round(v * U, 1)
    return str(int(v)) if v == int(v) else str(v)


class Sheet:
    def __init__(self):
        self.title = ""
        self.w, self.h = 60, 40
        self.pins = {}
        self.body = []
        self.wires = []
        self.dots = []

    # --- primitives (grid units) ---
    def line(self, x1, y1, x2, y2, extra=""):
        self.body.append('<line x1="%s" y1="%s" x2="%s" y2="%s"%s/>'
                         % (fmt(x1), fmt(y1), fmt(x2), fmt(y2), extra))

    def poly(self, pts, fill="none", closed=True):
        tag = "polygon" if closed else "polyline"
        self.body.append('<%s points="%s" fill="%s"/>' % (
            tag, " ".join("%s,%s" % (fmt(x), fmt(y)) for x, y in pts), fill))

    def rect(self, x, y, w, h, extra="", fill="white"):
        self.body.append('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"%s/>'
                         % (fmt(x), fmt(y), fmt(w), fmt(h), fill, extra))

    def circle(self, x, y, r, fill="none"):
        self.body.append('<circle cx="%s" cy="%s" r="%s" fill="%s"/>'
                         % (fmt(x), fmt(y), fmt(r), fill))

    def text(self, x, y, s, anchor="start", size=11, fill="black"):
        s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        self.body.append('<text x="%s" y="%s" font-size="%d" text-anchor="%s" stroke="none" '
                         'fill="%s">%s</text>' % (fmt(x), fmt(y), size, anchor, fill, s))

    def pin(self, part, name, x, y):
        self.pins["%s.%s" % (part, name)] = (x, y)

    # --- parts ---
    def res(self, name, x, y, o, label, cap=False):
        if o == "h":
            self.pin(name, 1, x, y)
            self.pin(name, 2, x + 4, y)
            if cap:
                self.line(x, y, x + 1.7, y)
                self.line(x + 2.3, y, x + 4, y)
                self.line(x + 1.7, y - 1, x + 1.7, y + 1)
                self.line(x + 2.3, y - 1, x + 2.3, y + 1)
            else:
                self.line(x, y, x + 0.8, y)
                self.line(x + 3.2, y, x + 4, y)
                self.rect(x + 0.8, y - 0.5, 2.4, 1)
            self.text(x + 2, y - 1.2, name + " " + label, "middle")
        else:
            self.pin(name, 1, x, y)
            self.pin(name, 2, x, y + 4)
            if cap:
                self.line(x, y, x, y + 1.7)
                self.line(x, y + 2.3, x, y + 4)
                self.line(x - 1, y + 1.7, x + 1, y + 1.7)
                self.line(x - 1, y + 2.3, x + 1, y + 2.3)
            else:
                self.line(x, y, x, y + 0.8)
                self.line(x, y + 3.2, x, y + 4)
                self.rect(x - 0.5, y + 0.8, 1, 2.4)
            self.text(x + 1, y + 1.8, name, "start")
            self.text(x + 1, y + 3.0, label, "start")

    def diode(self, name, x, y, d, label, kind="diode"):
        dx, dy = {"r": (1, 0), "l": (-1, 0), "d": (0, 1), "u": (0, -1)}[d]
        px, py = -dy, dx  # perpendicular
        ax, ay = x, y
        kx, ky = x + 4 * dx, y + 4 * dy
        self.pin(name, "a", ax, ay)
        self.pin(name, "k", kx, ky)
        t0 = (x + 1.3 * dx, y + 1.3 * dy)  # triangle base centre
        t1 = (x + 2.7 * dx, y + 2.7 * dy)  # tip at the bar
        self.line(ax, ay, t0[0], t0[1])
        self.line(t1[0], t1[1], kx, ky)
        self.poly([(t0[0] + 0.8 * px, t0[1] + 0.8 * py), (t0[0] - 0.8 * px, t0[1] - 0.8 * py), t1])
        self.line(t1[0] + 0.8 * px, t1[1] + 0.8 * py, t1[0] - 0.8 * px, t1[1] - 0.8 * py)
        if kind == "zener":  # bent ends on the bar
            self.line(t1[0] + 0.8 * px, t1[1] + 0.8 * py,
                      t1[0] + 0.8 * px - 0.4 * dx, t1[1] + 0.8 * py - 0.4 * dy)
            self.line(t1[0] - 0.8 * px, t1[1] - 0.8 * py,
                      t1[0] - 0.8 * px + 0.4 * dx, t1[1] - 0.8 * py + 0.4 * dy)
        if kind == "led":
            self.arrows(t1[0] + 1.0 * px - 0.6 * dx, t1[1] + 1.0 * py - 0.6 * dy, px, py, dx, dy)
        if dx:
            self.text(x + 2 * dx, y - 1.3, name + " " + label, "middle")
        else:
            self.text(x + 1.2, y + 1.8 * dy + (0.4 if dy > 0 else 0), name, "start")
            self.text(x + 1.2, y + 3.0 * dy + (0.4 if dy > 0 else 0), label, "start")

    def arrows(self, x, y, px, py, dx, dy, inward=False):
        # two small light arrows, pointing away from (or into) the symbol along px, py
        for k in (0, 0.7):
            sx, sy = x + k * dx, y + k * dy
            ex, ey = sx + 0.9 * px, sy + 0.9 * py
            if inward:
                sx, sy, ex, ey = ex, ey, sx, sy
            self.line(sx, sy, ex, ey)
            self.poly([(ex, ey), (ex - 0.35 * px + 0.2 * dx, ey - 0.35 * py + 0.2 * dy),
                       (ex - 0.35 * px - 0.2 * dx, ey - 0.35 * py - 0.2 * dy)], fill="black")

    def opto(self, name, x, y, label):
        self.rect(x, y, 8, 6, ' stroke-dasharray="4 2"')
        for p, px, py in (("a", x, y + 1), ("k", x, y + 5), ("c", x + 8, y + 1), ("e", x + 8, y + 5)):
            self.pin(name, p, px, py)
        # LED, anode up, inside the left half
        lx = x + 2
        self.line(x, y + 1, lx, y + 1)
        self.line(lx, y + 1, lx, y + 2.3)
        self.poly([(lx - 0.8, y + 2.3), (lx + 0.8, y + 2.3), (lx, y + 3.5)])
        self.line(lx - 0.8, y + 3.5, lx + 0.8, y + 3.5)
        self.line(lx, y + 3.5, lx, y + 5)
        self.line(lx, y + 5, x, y + 5)
        self.arrows(lx + 1.1, y + 2.6, 1, 0, 0, 0.6)
        # phototransistor in the right half: base bar, collector up, emitter down with arrow
        bx = x + 5
        self.line(bx, y + 2.2, bx, y + 3.8)
        self.line(bx, y + 2.7, x + 6.5, y + 1.6)
        self.line(x + 6.5, y + 1.6, x + 6.5, y + 1)
        self.line(x + 6.5, y + 1, x + 8, y + 1)
        self.line(bx, y + 3.3, x + 6.5, y + 4.4)
        self.poly([(x + 6.5, y + 4.4), (x + 5.9, y + 4.3), (x + 6.25, y + 3.85)], fill="black")
        self.line(x + 6.5, y + 4.4, x + 6.5, y + 5)
        self.line(x + 6.5, y + 5, x + 8, y + 5)
        self.text(x + 4, y - 0.6, name + " " + label, "middle")
        self.text(x - 0.3, y + 0.7, "A", "end", 9)
        self.text(x - 0.3, y + 6.2, "K", "end", 9)
        self.text(x + 8.3, y + 0.7, "C", "start", 9)
        self.text(x + 8.3, y + 6.2, "E", "start", 9)

    def npn(self, name, x, y, label):
        self.pin(name, "b", x, y)
        self.pin(name, "c", x + 3, y - 3)
        self.pin(name, "e", x + 3, y + 3)
        self.circle(x + 2, y, 1.9)
        self.line(x, y, x + 1.4, y)
        self.line(x + 1.4, y - 1, x + 1.4, y + 1)
        self.line(x + 1.4, y - 0.5, x + 3, y - 1.6)
        self.line(x + 3, y - 1.6, x + 3, y - 3)
        self.line(x + 1.4, y + 0.5, x + 3, y + 1.6)
        self.poly([(x + 3, y + 1.6), (x + 2.35, y + 1.55), (x + 2.7, y + 1.05)], fill="black")
        self.line(x + 3, y + 1.6, x + 3, y + 3)
        self.text(x + 4.3, y - 0.2, name, "start")
        self.text(x + 4.3, y + 1.0, label, "start")

    def conn(self, name, x, y, title, pins):
        n = len(pins)
        self.rect(x - 9, y, 9, 2 * n + 1)
        self.text(x - 4.5, y - 0.6, name + " " + title, "middle")
        for i, p in enumerate(pins):
            num, _, label = p.partition(":")
            py = y + 1 + 2 * i
            self.pin(name, num, x, py)
            self.text(x - 8.5, py + 0.4, num, "start", 10)
            self.text(x - 0.5, py + 0.4, label, "end", 10)

    def ic(self, name, x, y, w, title, left, right):
        n = max(len(left), len(right))
        self.rect(x, y, w, 2 * n + 1)
        self.text(x + w / 2, y - 0.6, name + " " + title, "middle")
        for i, p in enumerate(left):
            if p:
                key, _, label = p.partition(":")
                self.pin(name, key, x, y + 1 + 2 * i)
                self.text(x + 0.5, y + 1.4 + 2 * i, label or key, "start", 10)
        for i, p in enumerate(right):
            if p:
                key, _, label = p.partition(":")
                self.pin(name, key, x + w, y + 1 + 2 * i)
                self.text(x + w - 0.5, y + 1.4 + 2 * i, label or key, "end", 10)

    def gnd(self, x, y, label=""):
        self.line(x, y, x, y + 1)
        self.line(x - 1, y + 1, x + 1, y + 1)
        self.line(x - 0.6, y + 1.4, x + 0.6, y + 1.4)
        self.line(x - 0.2, y + 1.8, x + 0.2, y + 1.8)
        if label:
            self.text(x + 1.3, y + 1.5, label, "start", 9)

    def supply(self, x, y, label):
        self.line(x, y, x, y - 1)
        self.line(x - 1, y - 1, x + 1, y - 1)
        self.text(x, y - 1.5, label, "middle", 10)

    # --- wires ---
    def point(self, tok):
        if tok in self.pins:
            return self.pins[tok]
        if "," in tok:
            a, b = tok.split(",")
            return float(a), float(b)
        raise ValueError("unknown pin or point %r (pins: %s)" % (tok, ", ".join(sorted(self.pins))))

    def wire(self, toks):
        prev = None
        for tok in toks:
            vfirst = tok.startswith("|")
            p = self.point(tok.lstrip("|"))
            if prev is not None:
                if prev[0] != p[0] and prev[1] != p[1]:
                    mid = (prev[0], p[1]) if vfirst else (p[0], prev[1])
                    self.wires.append((prev, mid))
                    self.wires.append((mid, p))
                else:
                    self.wires.append((prev, p))
            prev = p

    def svg(self):
        W, H = self.w * U, self.h * U
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'viewBox="0 0 %d %d" %s>' % (W, H, W, H, FONT),
               '<rect width="%d" height="%d" fill="white"/>' % (W, H),
               '<text x="10" y="18" font-size="14" font-weight="bold">%s</text>'
               % self.title.replace("&", "&amp;").replace("<", "&lt;"),
               '<g stroke="black" stroke-width="1.4" stroke-linecap="round" fill="none">']
        for (a, b) in self.wires:
            out.append('<line x1="%s" y1="%s" x2="%s" y2="%s"/>'
                       % (fmt(a[0]), fmt(a[1]), fmt(b[0]), fmt(b[1])))
        out.extend(self.body)
        for x, y in self.dots:
            out.append('<circle cx="%s" cy="%s" r="3" fill="black"/>' % (fmt(x), fmt(y)))
        out.append("</g>")
        out.append("</svg>")
        return "\n".join(out) + "\n"


def parse(text):
    sh = Sheet()
    for lineno, raw in enumerate(text.splitlines(), 1):
        t = shlex.split(raw, comments=True)
        if not t:
            continue
        cmd, a = t[0], t[1:]
        try:
            if cmd == "title":
                sh.title = a[0]
            elif cmd == "size":
                sh.w, sh.h = int(a[0]), int(a[1])
            elif cmd in ("res", "cap"):
                sh.res(a[0], float(a[1]), float(a[2]), a[3], a[4] if len(a) > 4 else "",
                       cap=cmd == "cap")
            elif cmd in ("diode", "zener", "led"):
                sh.diode(a[0], float(a[1]), float(a[2]), a[3], a[4] if len(a) > 4 else "", cmd)
            elif cmd == "opto":
                sh.opto(a[0], float(a[1]), float(a[2]), a[3])
            elif cmd == "npn":
                sh.npn(a[0], float(a[1]), float(a[2]), a[3])
            elif cmd == "conn":
                sh.conn(a[0], float(a[1]), float(a[2]), a[3], a[4:])
            elif cmd == "ic":
                kw = dict(x.split("=", 1) for x in a[5:])
                sh.ic(a[0], float(a[1]), float(a[2]), float(a[3]), a[4],
                      kw.get("left", "").split(",") if kw.get("left") else [],
                      kw.get("right", "").split(",") if kw.get("right") else [])
            elif cmd == "gnd":
                sh.gnd(float(a[0]), float(a[1]), a[2] if len(a) > 2 else "")
            elif cmd == "supply":
                sh.supply(float(a[0]), float(a[1]), a[2])
            elif cmd == "dot":
                sh.dots.append(sh.point(a[0]) if len(a) == 1 else (float(a[0]), float(a[1])))
            elif cmd == "text":
                sh.text(float(a[0]), float(a[1]), a[2], a[3] if len(a) > 3 else "start")
            elif cmd == "note":
                sh.text(float(a[0]), float(a[1]), a[2], "start", 10, "#333")
            elif cmd == "box":
                sh.rect(float(a[0]), float(a[1]), float(a[2]), float(a[3]),
                        ' stroke="#888" stroke-dasharray="6 4"', fill="none")
                sh.text(float(a[0]) + 0.5, float(a[1]) + 1.3, a[4], "start", 10, "#555")
            elif cmd == "wire":
                sh.wire(a)
            else:
                raise ValueError("unknown statement %r" % cmd)
        except (IndexError, ValueError) as e:
            raise SystemExit("line %d: %s: %s" % (lineno, raw.strip(), e))
    return sh


def render(path):
    with open(path) as f:
        return parse(f.read()).svg()


def main(argv):
    check = "--check" in argv
    stale = []
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".sch"):
            continue
        src = os.path.join(HERE, name)
        dst = src[:-4] + ".svg"
        svg = render(src)
        old = open(dst).read() if os.path.exists(dst) else None
        if old != svg:
            if check:
                stale.append(os.path.basename(dst))
            else:
                with open(dst, "w") as f:
                    f.write(svg)
                print("wrote " + os.path.relpath(dst))
    if stale:
        print("out of date (run python3 docs/schematics/draw.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
