# The one OBIS table: which reading slot each OBIS code fills, and the slot names and units.
#
# An OBIS code is A-B:C.D.E.F. The table is keyed on C.D.E packed into 24 bits (a small int on
# every port), with one dict per A group: A=1 is electricity, A=0 abstract objects (ids, clock).
# Group B is the channel: 0 and 1 both mean "the meter itself" for electricity (Kamstrup and
# L+G send 1-1:...). For A=0 only B=0 is the meter, except the clock, which Kamstrup sends
# as 0-1:1.0.0; in DSMR, 0-1:96.1.0 is the gas meter's id, so B is checked there. F is ignored.
try:
    from micropython import const
except ImportError:
    from han.compat import const

# Numeric slots: value = mantissa * 10**exponent in the unit listed in UNITS.
ACTIVE_POWER_IMPORT = const(0)
ACTIVE_POWER_EXPORT = const(1)
REACTIVE_POWER_IMPORT = const(2)
REACTIVE_POWER_EXPORT = const(3)
ACTIVE_ENERGY_IMPORT = const(4)
ACTIVE_ENERGY_EXPORT = const(5)
REACTIVE_ENERGY_IMPORT = const(6)
REACTIVE_ENERGY_EXPORT = const(7)
ACTIVE_POWER_IMPORT_L1 = const(8)
ACTIVE_POWER_EXPORT_L1 = const(11)
REACTIVE_POWER_IMPORT_L1 = const(14)
REACTIVE_POWER_EXPORT_L1 = const(17)
VOLTAGE_L1 = const(20)
CURRENT_L1 = const(23)
POWER_FACTOR = const(26)
POWER_FACTOR_L1 = const(27)
FREQUENCY = const(30)
NUM_SLOTS = const(31)

# Text slots (strings the meter sends about itself).
TEXT_BASE = const(64)
METER_ID = const(64)
METER_TYPE = const(65)
LIST_ID = const(66)
NUM_TEXTS = const(3)
# The meter clock.
CLOCK = const(80)
# Flag in a table value: B=1 is accepted as well as B=0 (for A=0 codes).
_B1 = const(0x100)

NAMES = (
    "active_power_import", "active_power_export",
    "reactive_power_import", "reactive_power_export",
    "active_energy_import", "active_energy_export",
    "reactive_energy_import", "reactive_energy_export",
    "active_power_import_l1", "active_power_import_l2", "active_power_import_l3",
    "active_power_export_l1", "active_power_export_l2", "active_power_export_l3",
    "reactive_power_import_l1", "reactive_power_import_l2", "reactive_power_import_l3",
    "reactive_power_export_l1", "reactive_power_export_l2", "reactive_power_export_l3",
    "voltage_l1", "voltage_l2", "voltage_l3",
    "current_l1", "current_l2", "current_l3",
    "power_factor", "power_factor_l1", "power_factor_l2", "power_factor_l3",
    "frequency",
)
TEXT_NAMES = ("meter_id", "meter_type", "list_id")

# DLMS unit codes (IEC 62056-6-2 / Blue Book), used for slots, scaler-units and passthrough.
U_NONE = const(0xFF)
U_W = const(0x1B)
U_VA = const(0x1C)
U_VAR = const(0x1D)
U_WH = const(0x1E)
U_VAH = const(0x1F)
U_VARH = const(0x20)
U_A = const(0x21)
U_V = const(0x23)
U_HZ = const(0x2C)
UNIT_TEXT = {0x1B: "W", 0x1C: "VA", 0x1D: "var", 0x1E: "Wh", 0x1F: "VAh", 0x20: "varh",
             0x21: "A", 0x23: "V", 0x2C: "Hz", 0x07: "s", 0x0D: "m3", 0x08: "deg", 0xFF: ""}

# The unit of every numeric slot, in slot order.
UNITS = bytes((U_W, U_W, U_VAR, U_VAR, U_WH, U_WH, U_VARH, U_VARH,
               U_W, U_W, U_W, U_W, U_W, U_W,
               U_VAR, U_VAR, U_VAR, U_VAR, U_VAR, U_VAR,
               U_V, U_V, U_V, U_A, U_A, U_A,
               U_NONE, U_NONE, U_NONE, U_NONE, U_HZ))


def _cde(c, d, e):
    return (c << 16) | (d << 8) | e


# A=1 (electricity): C.D.E -> slot. Quadrants as in the Swedish list: A+ = 1, A- = 2,
# R+ = 3, R- = 4; per phase add 20 (L1), 40 (L2), 60 (L3).
_A1 = {
    _cde(1, 7, 0): ACTIVE_POWER_IMPORT, _cde(2, 7, 0): ACTIVE_POWER_EXPORT,
    _cde(3, 7, 0): REACTIVE_POWER_IMPORT, _cde(4, 7, 0): REACTIVE_POWER_EXPORT,
    _cde(1, 8, 0): ACTIVE_ENERGY_IMPORT, _cde(2, 8, 0): ACTIVE_ENERGY_EXPORT,
    _cde(3, 8, 0): REACTIVE_ENERGY_IMPORT, _cde(4, 8, 0): REACTIVE_ENERGY_EXPORT,
    _cde(21, 7, 0): 8, _cde(41, 7, 0): 9, _cde(61, 7, 0): 10,
    _cde(22, 7, 0): 11, _cde(42, 7, 0): 12, _cde(62, 7, 0): 13,
    _cde(23, 7, 0): 14, _cde(43, 7, 0): 15, _cde(63, 7, 0): 16,
    _cde(24, 7, 0): 17, _cde(44, 7, 0): 18, _cde(64, 7, 0): 19,
    _cde(32, 7, 0): 20, _cde(52, 7, 0): 21, _cde(72, 7, 0): 22,
    _cde(31, 7, 0): 23, _cde(51, 7, 0): 24, _cde(71, 7, 0): 25,
    _cde(13, 7, 0): POWER_FACTOR,
    _cde(33, 7, 0): 27, _cde(53, 7, 0): 28, _cde(73, 7, 0): 29,
    _cde(14, 7, 0): FREQUENCY,
    _cde(0, 2, 129): LIST_ID,  # Aidon 1-1:0.2.129, Swedish Kaifa 1-0:0.2.129
    _cde(0, 0, 5): METER_ID,  # Kamstrup 1-1:0.0.5
    _cde(96, 1, 1): METER_TYPE,  # Kamstrup 1-1:96.1.1
}
# A=0 (abstract objects).
_A0 = {
    _cde(1, 0, 0): CLOCK | _B1,  # 0-0:1.0.0, Kamstrup 0-1:1.0.0
    _cde(96, 1, 0): METER_ID,  # 0-0:96.1.0 (DSMR 0-1:96.1.0 is a gas meter: B checked)
    _cde(96, 1, 1): METER_ID,  # DSMR equipment identifier
    _cde(96, 1, 7): METER_TYPE,  # Aidon, Kaifa
    _cde(42, 0, 0): METER_ID,  # COSEM logical device name (L+G, Iskra)
}


def lookup(a, b, c, d, e):
    # Slot for an OBIS code, or -1 when it is not in the table (then it goes to passthrough).
    if a == 1:
        if b > 1:
            return -1
        return _A1.get((c << 16) | (d << 8) | e, -1)
    if a == 0:
        v = _A0.get((c << 16) | (d << 8) | e, -1)
        if v >= 0 and (b == 0 or (b == 1 and v & _B1)):
            return v & 0xFF
    return -1


def text_rank(a, c, d, e):
    # Which text wins a slot when a frame sends several: serial numbers (0-0:96.1.0,
    # Kamstrup 1-1:0.0.5) over the logical device name (0-0:42.0.0) and device id 2 (96.1.1).
    if a == 0 and ((c == 42 and d == 0) or (c == 96 and d == 1 and e == 1)):
        return 1
    return 2


def obis_text(a, b, c, d, e):
    # "A-B:C.D.E", the form tools/decode.py and MQTT use (edge only: allocates).
    return "%d-%d:%d.%d.%d" % (a, b, c, d, e)
