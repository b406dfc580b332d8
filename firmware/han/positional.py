# Positional lists: values without OBIS codes, mapped by a documented list definition.
#
#  Kaifa KFM_001 (NEK HAN, protocols.md 2.8), first element the list id "KFM_001":
#    3-phase list 2 (13): id, meter id, type, P+, P-, Q+, Q-, I1, I2, I3, U1, U2, U3
#    3-phase list 3 (18): list 2 + clock, A+, A-, R+, R-
#    1-phase list 2 (9):  id, meter id, type, P+, P-, Q+, Q-, I1, U1
#    1-phase list 3 (14): list 2 + clock, A+, A-, R+, R-
#  NEK list 1 (Kaifa, 1 element): active power import.
#  Netz Burgenland L+G E450 (amsreader issue #501), 14 elements recognised by their types:
#    U1 U2 U3 (V), I1 I2 I3 (0.01 A), P+ P- (W), A+ A- (Wh), three undocumented
#    long-unsigned values, meter id.
# A row is (A, B, C, D, E, exponent); exponent _CONV = use the make's convention
# (scaling.py), _SKIP = an element with no documented meaning.
from han import axdr, obis
from han.status import MALFORMED, OK, UNKNOWN_LAYOUT

try:
    from micropython import const
except ImportError:
    from han.compat import const

_CONV = const(100)
_SKIP = const(101)

_LIST_ID = (1, 1, 0, 2, 129, _CONV)
_ID = (0, 0, 96, 1, 0, _CONV)
_TYPE = (0, 0, 96, 1, 7, _CONV)
_CLOCK = (0, 0, 1, 0, 0, _CONV)
_POWERS = ((1, 0, 1, 7, 0, _CONV), (1, 0, 2, 7, 0, _CONV), (1, 0, 3, 7, 0, _CONV), (1, 0, 4, 7, 0, _CONV))
_ENERGIES = ((1, 0, 1, 8, 0, _CONV), (1, 0, 2, 8, 0, _CONV), (1, 0, 3, 8, 0, _CONV), (1, 0, 4, 8, 0, _CONV))
_I3 = ((1, 0, 31, 7, 0, _CONV), (1, 0, 51, 7, 0, _CONV), (1, 0, 71, 7, 0, _CONV))
_U3 = ((1, 0, 32, 7, 0, _CONV), (1, 0, 52, 7, 0, _CONV), (1, 0, 72, 7, 0, _CONV))

_KFM_3PH = (_LIST_ID, _ID, _TYPE) + _POWERS + _I3 + _U3 + (_CLOCK,) + _ENERGIES
_KFM_1PH = (_LIST_ID, _ID, _TYPE) + _POWERS + (_I3[0], _U3[0], _CLOCK) + _ENERGIES
_LIST1 = ((1, 0, 1, 7, 0, _CONV),)

_BURGENLAND_TYPES = b"\x12\x12\x12\x12\x12\x12\x06\x06\x06\x06\x12\x12\x12\x09"
_BURGENLAND = (
    (1, 0, 32, 7, 0, 0), (1, 0, 52, 7, 0, 0), (1, 0, 72, 7, 0, 0),
    (1, 0, 31, 7, 0, -2), (1, 0, 51, 7, 0, -2), (1, 0, 71, 7, 0, -2),
    (1, 0, 1, 7, 0, 0), (1, 0, 2, 7, 0, 0), (1, 0, 1, 8, 0, 0), (1, 0, 2, 8, 0, 0),
    (0, 0, 0, 0, 0, _SKIP), (0, 0, 0, 0, 0, _SKIP), (0, 0, 0, 0, 0, _SKIP), _ID,
)


def _is_kfm(buf, p, end):
    # First child a string starting "KFM_".
    return (p + 6 <= end and axdr.is_string(buf[p]) and buf[p + 1] >= 4
            and buf[p + 2] == 0x4B and buf[p + 3] == 0x46 and buf[p + 4] == 0x4D and buf[p + 5] == 0x5F)


def _types_match(dl, buf, p, end, n, types):
    if n != len(types):
        return False
    cur = dl.cur
    for k in range(n):
        if p >= end or buf[p] != types[k]:
            return False
        p = cur.skip(buf, p, end)
        if p < 0:
            return False
    return True


def _layout(dl, buf, p, end, n):
    if n == 1 and axdr.is_integer(buf[p]):
        return _LIST1
    if _is_kfm(buf, p, end):
        if n == 13 or n == 18:
            return _KFM_3PH
        if n == 9 or n == 14:
            return _KFM_1PH
        return None
    if _types_match(dl, buf, p, end, n, _BURGENLAND_TYPES):
        return _BURGENLAND
    return None


def decode(dl, buf, p, end):
    # The body at p holds no OBIS codes: map it by a known list definition.
    tag = buf[p]
    n = 1
    if tag == axdr.STRUCTURE or tag == axdr.ARRAY:
        p = dl.cur.ber(buf, p + 1, end)
        if p < 0:
            return MALFORMED
        n = dl.cur.n
    rows = _layout(dl, buf, p, end, n) if n > 0 else None
    if rows is None:
        return UNKNOWN_LAYOUT
    for k in range(n):
        row = rows[k]
        x = row[5]
        if x == _SKIP:
            p = dl.cur.skip(buf, p, end)
        else:
            a = row[0]
            b = row[1]
            c = row[2]
            d = row[3]
            e = row[4]
            dl.last = -1
            p = dl.put(buf, p, end, obis.lookup(a, b, c, d, e), a, b, c, d, e)
            if x != _CONV and dl.last >= 0:
                dl.scale.fixed(dl.last, x)
        if p < 0:
            return MALFORMED
    return OK
