"""The one exception type that the CLI turns into a single line and exit status 2."""


class GradbenchError(Exception):
    """A problem the user can fix: bad input, an unknown method, a broken plugin or file."""
