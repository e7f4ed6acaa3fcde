"""The one check for a name a user gives: a dataset or dataset version, a run, a fleet worker.

A name is shown on one line everywhere (`datasets list`, pickers, logs), so it may not hold control
characters: a line break splits a table row and an escape code (ESC [31m) would colour the user's terminal.
"""

from __future__ import annotations

import unicodedata

from core.errors import ProtolabError

MAX_NAME_CHARS = 200
# Besides the C0/C1 controls (category Cc): line and paragraph separators, and the bidirectional overrides that
# make a name display as something it is not.
_INVISIBLE = {"\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def check_name(name: str | None, what: str, *, max_chars: int = MAX_NAME_CHARS,
               error: type[ProtolabError] = ProtolabError) -> str:
    """`name` stripped of surrounding spaces, or `error` saying why it cannot name `what` ("a dataset")."""
    name = (name or "").strip()
    if not name:
        raise error(f"{what} needs a name")
    if len(name) > max_chars:
        raise error(f"{what} name has at most {max_chars} characters")
    bad = sorted({ch for ch in name if unicodedata.category(ch) == "Cc" or ch in _INVISIBLE})
    if bad:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in bad)
        raise error(f"{what} name cannot hold control characters (line breaks, tabs, escape codes; found {shown})")
    return name
