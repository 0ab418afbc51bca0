"""The one exception type the user sees.

An RnngenError is a failure the user can fix (a missing file, a bad option value, a foreign
checkpoint). The CLI prints its message verbatim as `error: <message>` on stderr and exits 1,
with no traceback. Anything else that escapes is a bug and keeps its traceback.
"""


class RnngenError(Exception):
    """A user-fixable failure; the message is shown verbatim, on one line."""
