"""lab.core.units: the one parser and the formatters for counts, bytes and FLOPs."""
import pytest

from lab.core import units


@pytest.mark.parametrize("text, value", [
    ("1e9", 1e9), ("175e9", 175e9), ("1.3B", 1.3e9), ("7b", 7e9), ("124M", 124e6), ("70k", 70e3),
    ("1.4T", 1.4e12), ("2G", 2e9), ("70,000", 70_000), ("1,300,000", 1.3e6), ("1_000", 1000),
    (" 1.5 B ", 1.5e9), (".5", 0.5), ("+3", 3.0), (42, 42.0),
])
def test_parse_number_accepts_what_the_inputs_accepted(text, value):
    assert units.parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text, reason", [
    ("", "missing value"), ("  ", "missing value"), ("lots", "not a number"), ("1.2.3", "not a number"),
    ("5 apples", "not a number"), ("nan", "not a finite number"), ("inf", "not a finite number"),
    ("1e999", "not a finite number"), ("0", "zero"), ("-5", "negative"), ("16 GB", "not a number"),
])
def test_parse_number_says_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        units.parse_number(text)
    assert units.number_or_none(text) is None


def test_byte_sizes():
    p = lambda t: units.parse_number(t, bytes_units=True)   # noqa: E731
    assert p("16 GB") == 16e9 and p("16gb") == 16e9 and p("80e9") == 80e9 and p("80G") == 80e9
    assert p("20GiB") == 20 * 2 ** 30 and p("512 MiB") == 512 * 2 ** 20 and p("512 B") == 512
    assert p("1.5 TB") == 1.5e12 and p("1,024 KB") == 1.024e6
    assert units.number_or_none("16 XB", bytes_units=True) is None


def test_format_bytes_three_significant_digits_decimal_units():
    f = units.format_bytes
    assert f(4e9) == "4 GB" and f(16.8e9) == "16.8 GB" and f(112e9) == "112 GB"
    assert f(1.234e9) == "1.23 GB" and f(124e6) == "124 MB" and f(512) == "512 B" and f(0) == "0 B"
    assert f(999.7e9) == "1 TB" and f(2.5e15) == "2,500 TB" and f(None) == "n/a"
    assert f(4e6, "GB") == "0.004 GB" and f(24e9, "GB") == "24 GB"


def test_format_count():
    f = units.format_count
    assert f(124_439_808) == "124M" and f(1.3e9) == "1.3B" and f(7e9) == "7B" and f(70e3) == "70K"
    assert f(512) == "512" and f(1.4e12) == "1.4T" and f(None) == "n/a"


def test_format_number_and_flops():
    f = units.format_number
    assert f(3.14e23) == "3.14e23" and f(8.8e13) == "8.8e13" and f(406.4) == "406.4" and f(1234.5) == "1,234"
    assert f(0.0012) == "1.2e-3" and f(0) == "0" and f(None) == "n/a" and f(float("inf")) == "n/a"
    assert f(123456.0, sci_from=1e6) == "123,456"
    assert units.format_flops(3.15e23) == "3.15e23 FLOPs = 3,646 PF-days"
    assert units.PF_DAY == 8.64e19
