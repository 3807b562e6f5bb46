"""User-facing errors.

A :class:`UserError` is bad input or a bad option: the CLI prints its message on one
line and exits with status 1, without a traceback.  Messages name the file (and the
line or column where there is one) and say what was expected.
"""


class UserError(Exception):
    """An error caused by the user's input, reported without a traceback."""

    def __init__(self, message: str, path=None, line=None, column=None):
        parts = []
        if path is not None:
            loc = str(path)
            if line is not None:
                loc += f", line {line}"
            if column is not None:
                loc += f", column {column!r}"
            parts.append(loc)
        parts.append(message)
        super().__init__(": ".join(parts))
