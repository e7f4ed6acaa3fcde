"""Numbers for people: durations and setting values as a page or a report shows them (no Streamlit here)."""

from __future__ import annotations

from typing import Any


def format_duration(seconds: float | None) -> str:
    """79.6882 -> "1m 19s"; None -> "-"."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_setting(value: Any) -> str:
    """A config value as text: 5e-05 -> "0.00005", True -> "yes", None -> "default", (1, 2) -> "1, 2"."""
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if abs(value) >= 1e-6 else f"{value:.2g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_setting(v) for v in value)
    return str(value)
