"""The one base class for mistakes a user can fix: the CLI prints them as one line, pages as st.error."""


class ProtolabError(Exception):
    """A user-facing error: its message says what is wrong and where, no traceback needed."""
