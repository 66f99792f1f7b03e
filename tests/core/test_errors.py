"""lab.core.errors.first_line: what one-sentence messages quote from a library's report."""
from lab.core.errors import first_line


def test_first_line():
    assert first_line("\n  \x1b[31mBoom\x1b[0m: it broke  \nTraceback ...") == "Boom: it broke"
    assert first_line(ValueError("")) == "ValueError" and first_line("") == "unknown error"
    assert len(first_line("x" * 1000)) == 300
