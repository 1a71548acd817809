"""errors.one_line: any exception as the one line the CLI prints."""

import pytest

from gradbench.errors import GradbenchError, one_line


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (GradbenchError("unknown method 'x'"), "unknown method 'x'"),  # the message alone
        (ValueError("bad value\n  at line 3"), "ValueError: bad value"),  # first line only
        (RuntimeError("  padded  \n"), "RuntimeError: padded"),
        (KeyError(), "KeyError"),  # no message: the type, no trailing ': '
        (ZeroDivisionError("\n"), "ZeroDivisionError"),
        (ValueError("max of X"), "ValueError: max of X"),  # only ': ' is stripped
    ],
)
def test_one_line(exc, line):
    assert one_line(exc) == line


def test_gradbench_error_is_an_exception_the_cli_can_catch():
    assert issubclass(GradbenchError, Exception)
