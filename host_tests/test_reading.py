# The Reading's fixed-point storage (both interpreters): exact values of any size and sign.
from han import obis
from han.reading import Reading, decimal_text


def _entry(rd, slot=obis.ACTIVE_ENERGY_IMPORT):
    return rd.entry(slot, 1, 0, 1, 8, 0, obis.U_WH)


def test_big_registers_are_exact():
    rd = Reading()
    i = _entry(rd)
    rd.set_be(i, b"\xff\xff\xff\xff", 0, 4, False, 0)
    assert rd.mantissa(i) == 4294967295
    rd.set_be(i, b"\x7f\xff\xff\xff\xff\xff\xff\xff", 0, 8, False, 1)
    assert rd.decimal(i) == "92233720368547758070"
    rd.set_digits(i, b"12345678901.234", 0, 15, 3)
    assert rd.decimal(i) == "12345678901234"


def test_signed_values():
    rd = Reading()
    i = rd.entry(obis.CURRENT_L1, 1, 0, 31, 7, 0, obis.U_A)
    rd.set_be(i, b"\xff\xfb", 0, 2, True, -1)
    assert rd.decimal(i) == "-0.5"
    rd.set_be(i, b"\x80\x00\x00\x00\x00\x00\x00\x00", 0, 8, True, 0)
    assert rd.mantissa(i) == -(2**63)
    rd.set_be(i, b"\xff\xfb", 0, 2, False, 0)
    assert rd.mantissa(i) == 65531
    assert rd.set_digits(i, b"-001.5", 0, 6, 0) and rd.decimal(i) == "-1.5"


def test_bad_digits_leave_the_entry_unset():
    rd = Reading()
    i = _entry(rd)
    assert not rd.set_digits(i, b"12a4", 0, 4, 0)
    assert not rd.set_digits(i, b"1.2.3", 0, 5, 0)
    assert not rd.set_digits(i, b"", 0, 0, 0)
    assert not rd.has(i)


def test_clear_marks_everything_absent():
    rd = Reading()
    i = _entry(rd)
    rd.set_small(i, 5, 0)
    rd.set_text(obis.METER_ID, b"123", 0, 3)
    rd.set_clock(2024, 1, 2, 3, 4, 5, -60, 0)
    rd.clear()
    assert not rd.has(i)
    assert rd.get_text(obis.METER_ID) is None
    assert rd.clock_iso() is None


def test_passthrough_is_bounded_and_counts_drops():
    rd = Reading(passthrough=2)
    for k in range(3):
        i = rd.entry(-1, 1, 0, 99, 1, k, obis.U_NONE)
        if i >= 0:
            rd.set_small(i, k, 0)
    assert rd.npass == 2 and rd.dropped == 1
    assert rd.obis_of(obis.NUM_SLOTS + 1) == "1-0:99.1.1"


def test_decimal_text():
    assert decimal_text(2289, -1) == "228.9"
    assert decimal_text(5, -3) == "0.005"
    assert decimal_text(-5, -3) == "-0.005"
    assert decimal_text(12, 3) == "12000"
    assert decimal_text(0, -2) == "0.00"


def test_clock_offset_from_deviation():
    rd = Reading()
    rd.set_clock(2024, 11, 15, 14, 45, 45, -60, 0)
    assert rd.clock_iso() == "2024-11-15T14:45:45+01:00"
    rd.set_clock(2024, 11, 15, 14, 45, 45, -0x8000, 0)
    assert rd.clock_iso() == "2024-11-15T14:45:45"
