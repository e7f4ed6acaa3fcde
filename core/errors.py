"""The one base class for mistakes a user can fix: the CLI prints them as one line, pages as st.error."""


class ProtolabError(Exception):
    """A user-facing error: its message says what is wrong and where, no traceback needed."""


class RefusedInput(ProtolabError):
    """Input a caller sent that cannot be answered, with the HTTP status and code the API answers it with
    (core/ knows what is wrong with an upload; only core.api speaks HTTP, so the status travels with it)."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.status, self.code = status, code
