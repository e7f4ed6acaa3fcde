"""What other pages read from a dataset's latest data audit: the zero-label baseline of a split, and a flag
per (text, label) for the rows the audit found suspicious."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db import audits as audit_queries


def zero_label_scores(s: Session, dataset_id: int, split: str) -> dict[str, Any] | None:
    """The zero-label baseline's headline metrics on `split` from the latest audit, or None."""
    audit = audit_queries.latest_audit(s, dataset_id)
    if audit is None:
        return None
    return ((audit.zero_label or {}).get("reports") or {}).get(split)


def audit_flags(s: Session, dataset_id: int) -> dict[tuple[str, str], str]:
    """(text, given label) -> a short flag: "label wrong? → X (0.97)" (likely), "label? → X (0.62)" (possible),
    "duplicate", "leak", "empty"..."""
    audit = audit_queries.latest_audit(s, dataset_id)
    if audit is None:
        return {}
    findings = audit.findings or {}
    flags: dict[tuple[str, str], list[str]] = {}
    for issue in findings.get("label_issues", []):
        flags.setdefault((issue["text"], issue["label"]), []).append(
            f"{'label wrong?' if issue.get('likely', True) else 'label?'} → {issue['suggested']} "
            f"({issue['score']:.2f})")
    for dup in findings.get("duplicates", []):
        flags.setdefault((dup["text"], dup["label"]), []).append("leak" if dup.get("leak") else "duplicate")
    for odd in findings.get("oddities", []):
        flags.setdefault((odd["text"], odd["label"]), []).append(str(odd["kind"]).replace("_", " "))
    return {key: "; ".join(values) for key, values in flags.items()}
