"""The one exception type that the CLI turns into a single line and exit status 2."""


class GradbenchError(Exception):
    """A problem the user can fix: bad input, an unknown method, a broken plugin or file."""


def one_line(exc: BaseException) -> str:
    """An exception as one line a user can read: its type and first line of message."""
    if isinstance(exc, GradbenchError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
