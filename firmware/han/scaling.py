# Scaling of values whose frame carries no scaler-unit (protocols.md 2.9).
#
# Aidon, L+G EMBRIQ and the Austrian lists send a scaler-unit with every register, and it is
# always applied. Kamstrup and Kaifa send bare integers; their documented conventions are:
#   Kamstrup (NVE lists): power W, current 0.01 A, voltage 1 V, energy 0.01 kWh (10 Wh),
#       power factor 0.01. Swedish Kamstrup HAN sends energy in Wh (amsreader #239): the
#       kamstrup_wh option (config meter_kamstrup_energy = "wh") selects that.
#   Kaifa (KFM_001 and the Swedish inline list): power W, current mA, voltage 0.1 V, energy Wh.
# Swiss L+G and Iskra pushes carry no scalers and are scaled by the meter's configuration
# (an E450 sends 0.01 A, an E570 whole amperes; voltage in V or 0.1 V). For a make without a
# convention the units are chosen by physics, as protocols.md 2.9 advises: mains voltage
# lies between 50 and 500 V, and apparent power S = sum(U*I) must agree with the active power
# P (power factor P/S between 0.15 and 1.1). Defaults: V, 0.01 A.
from han import obis

try:
    from micropython import const
except ImportError:
    from han.compat import const

UNKNOWN = const(0)
AIDON = const(1)
KAIFA = const(2)
KAMSTRUP = const(3)
LANDIS = const(4)
ISKRA = const(5)
SAGEMCOM = const(6)

_V1 = const(20)  # obis.VOLTAGE_L1
_I1 = const(23)  # obis.CURRENT_L1


def _prefix(buf, q, n, text):
    if n < len(text):
        return False
    for j in range(len(text)):
        if buf[q + j] != text[j]:
            return False
    return True


def make_of(buf, q, n):
    # The make from a list id or a system title (FLAG id: KAM, KFM, LGZ, ISK, SAG).
    if _prefix(buf, q, n, b"Kamstrup") or _prefix(buf, q, n, b"KAM"):
        return KAMSTRUP
    if _prefix(buf, q, n, b"KFM"):
        return KAIFA
    if _prefix(buf, q, n, b"AIDON"):
        return AIDON
    if _prefix(buf, q, n, b"LGZ") or _prefix(buf, q, n, b"EMBRIQ"):
        return LANDIS
    if _prefix(buf, q, n, b"ISK"):
        return ISKRA
    if _prefix(buf, q, n, b"SAG"):
        return SAGEMCOM
    return UNKNOWN


_NONE = const(127)


class Scaling:
    def __init__(self, reading, kamstrup_wh=False, current_exp=None, voltage_exp=None,
                 energy_exp=None):
        # The *_exp arguments override the convention for frames without scalers (a CT
        # meter's currents in mA, a distributor's voltage in 0.1 V): the user's per-meter fix.
        self.rd = reading
        self.kamstrup_wh = kamstrup_wh
        self.fix_i = _NONE if current_exp is None else current_exp
        self.fix_u = _NONE if voltage_exp is None else voltage_exp
        self.fix_e = _NONE if energy_exp is None else energy_exp
        self.implicit_flag = bytearray(reading.capacity)
        self.title_make = UNKNOWN
        self.make = UNKNOWN

    def begin(self):
        # A new frame: the make comes from its system title (set by the decoder) until a
        # list id says otherwise.
        self.make = self.title_make
        fl = self.implicit_flag
        for i in range(len(fl)):
            fl[i] = 0

    def list_id(self, buf, q, n):
        m = make_of(buf, q, n)
        if m != UNKNOWN:
            self.make = m

    def implicit(self, i, slot):
        # A value just stored with exponent 0 and no scaler seen yet.
        if slot < 0:
            return
        e = 0
        m = self.make
        fixed = False
        if slot == _I1 or slot == _I1 + 1 or slot == _I1 + 2:
            e = -2 if m == KAMSTRUP else (-3 if m == KAIFA else (-1 if m == AIDON else -2))
            if self.fix_i != _NONE:
                e = self.fix_i
                fixed = True
        elif slot == _V1 or slot == _V1 + 1 or slot == _V1 + 2:
            e = -1 if (m == KAIFA or m == AIDON) else 0
            if self.fix_u != _NONE:
                e = self.fix_u
                fixed = True
        elif obis.ACTIVE_ENERGY_IMPORT <= slot <= obis.REACTIVE_ENERGY_EXPORT:
            e = 1 if (m == KAMSTRUP and not self.kamstrup_wh) else 0
            if self.fix_e != _NONE:
                e = self.fix_e
                fixed = True
        elif obis.POWER_FACTOR <= slot <= obis.POWER_FACTOR_L1 + 2:
            e = -2 if m == KAMSTRUP else (-3 if m == KAIFA else 0)
        self.rd.exp[i] = e
        self.implicit_flag[i] = 0 if fixed else 1

    def explicit(self, i, scaler, unit):
        # A scaler-unit structure from the frame: always wins over any convention.
        rd = self.rd
        rd.exp[i] = scaler - 256 if scaler >= 128 else scaler
        if i >= obis.NUM_SLOTS:
            rd.unit[i] = unit
        self.implicit_flag[i] = 0

    def fixed(self, i, exp):
        # An exponent given by a documented positional list definition.
        self.rd.exp[i] = exp
        self.implicit_flag[i] = 0

    def finish(self):
        m = self.make
        if m == KAMSTRUP or m == KAIFA or m == AIDON:
            return
        self._infer_voltage()
        self._infer_current()

    def _raw(self, i):
        # Small non-negative raw value of entry i (voltages, currents, powers fit in 30 bits).
        lb = self.rd.limbs
        return lb[4 * i] | (lb[4 * i + 1] << 16)

    def _implicit(self, slot):
        return self.rd.seen[slot] == 1 and self.implicit_flag[slot]

    def _infer_voltage(self):
        top = 0
        for s in range(_V1, _V1 + 3):
            if self._implicit(s):
                top = max(top, self._raw(s))
        e = -2 if top >= 10000 else (-1 if top >= 1000 else 0)
        for s in range(_V1, _V1 + 3):
            if self._implicit(s):
                self.rd.exp[s] = e

    def _infer_current(self):
        # Volts per phase (whole) times raw current, summed: S_raw; then pick the exponent
        # that puts P/S in the plausible range, trying the common 0.01 A first.
        rd = self.rd
        s_raw = 0
        any_i = False
        for k in range(3):
            if self._implicit(_I1 + k):
                any_i = True
                if rd.seen[_V1 + k] == 1:
                    u = self._raw(_V1 + k)
                    ue = rd.exp[_V1 + k]
                    u = u // 100 if ue == -2 else (u // 10 if ue == -1 else u)
                    s_raw += u * self._raw(_I1 + k)
        if not any_i:
            return
        p = 0
        for s in range(2):  # active power import (slot 0) and export (slot 1)
            if rd.seen[s] == 1 and rd.exp[s] == 0:
                p += self._raw(s)
        e = -2
        if p > 0 and s_raw > 0:
            for cand in (-2, -1, 0, -3):
                # S = s_raw * 10**cand; plausible when 0.15 <= P/S <= 1.1
                scale = 10 ** (-cand) if cand < 0 else 1
                mult = 10**cand if cand > 0 else 1
                s_num = s_raw * mult  # S * scale
                if 15 * s_num <= 100 * p * scale and 10 * p * scale <= 11 * s_num:
                    e = cand
                    break
        for k in range(3):
            if self._implicit(_I1 + k):
                rd.exp[_I1 + k] = e
