"""A search's space: which options it varies and over what, from the kind's option schema (`Option.search`) or a
`--space` text such as 'learning_rate=log(1e-5,1e-3);epochs=int(1,5);tfidf_ngram_max=choice(1,2)'.

Pure Python (no Optuna): the space is stored on the search row as plain dicts, and `suggest` asks an Optuna trial
for one value of each parameter.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import ProtolabError
from core.runs.registry import ModelKind, Option

# How a range is written: log(a,b) and float(a,b) for reals, int(a,b) (ilog(a,b) on a log scale), choice(a,b,...).
FORMS = ("log", "float", "int", "ilog", "choice")
_ENTRY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([a-z]+)\s*\((.*)\)\s*$")


class SpaceError(ProtolabError):
    """A --space entry Protolab cannot use (which entry, and why)."""


@dataclass(frozen=True)
class Param:
    """One searched option: a number range (`low`..`high`, on a log scale when `log`) or a list of `choices`."""

    name: str
    type: str  # "float" | "int" | "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Param:
        return cls(**{**stored, "choices": tuple(stored.get("choices") or ())})

    def describe(self) -> str:
        if self.type == "choice":
            return f"{self.name} ∈ {{{', '.join(map(str, self.choices))}}}"
        return f"{self.name} {'log' if self.log else ''}[{self.low:g}, {self.high:g}]".replace("  ", " ")


def default_space(kind: ModelKind) -> list[Param]:
    """The options of `kind` that declare a search range, as the kind declares them."""
    return [_param_of(o, *o.search, log=o.log) for o in kind.options if o.search is not None]


def parse_space(text: str | None, kind: ModelKind) -> list[Param]:
    """The kind's default space with the entries of `text` replacing or adding parameters ('' or None: defaults).
    A search with nothing to vary is refused."""
    params = {p.name: p for p in default_space(kind)}
    for entry in [e for e in (text or "").split(";") if e.strip()]:
        param = _parse_entry(entry, kind)
        params[param.name] = param
    if not params:
        raise SpaceError(f"{kind.label} declares no search range: name what to vary with --space, e.g. "
                         "'learning_rate=log(1e-5,1e-3)'")
    return list(params.values())


def _parse_entry(entry: str, kind: ModelKind) -> Param:
    match = _ENTRY.match(entry)
    if match is None:
        raise SpaceError(f"--space entry {entry.strip()!r}: write NAME=FORM(...), FORM one of {', '.join(FORMS)} "
                         "(e.g. learning_rate=log(1e-5,1e-3))")
    name, form, args = match.group(1), match.group(2), [a.strip() for a in match.group(3).split(",") if a.strip()]
    option = kind.option(name)
    if option is None:
        names = ", ".join(o.name for o in kind.options if o.type in (int, float, str, bool))
        raise SpaceError(f"--space entry {entry.strip()!r}: {kind.label} has no option {name!r} (it has {names})")
    if form not in FORMS:
        raise SpaceError(f"--space entry {entry.strip()!r}: unknown form {form!r}; use one of {', '.join(FORMS)}")
    if form == "choice":
        if not args:
            raise SpaceError(f"--space entry {entry.strip()!r}: choice(...) needs at least one value")
        return Param(name, "choice", choices=tuple(_value_of(a, option, entry) for a in args))
    if len(args) != 2:
        raise SpaceError(f"--space entry {entry.strip()!r}: {form}(...) takes two numbers, low and high")
    low, high = (_number(a, entry) for a in args)
    if (form in ("int", "ilog")) != (option.type is int):
        use = ("a whole number: use int(...) or ilog(...)" if option.type is int
               else "not a whole number: use float(...) or log(...)")
        raise SpaceError(f"--space entry {entry.strip()!r}: {name} is {use}")
    return _param_of(option, low, high, log=form in ("log", "ilog"), entry=entry)


def _param_of(option: Option, low: float, high: float, *, log: bool, entry: str | None = None) -> Param:
    where = f"--space entry {entry.strip()!r}" if entry else f"option {option.name!r}"
    if option.type not in (int, float):
        raise SpaceError(f"{where}: {option.name} is not a number; use choice(...)")
    if low > high:
        raise SpaceError(f"{where}: low {low:g} is above high {high:g}")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log scale needs a low above 0 (got {low:g})")
    if (option.low is not None and low < option.low) or (option.high is not None and high > option.high):
        raise SpaceError(f"{where}: {option.name} must stay within [{option.low:g}, {option.high:g}]"
                         if option.low is not None and option.high is not None else
                         f"{where}: outside the valid range of {option.name}")
    if option.type is int:
        if low != int(low) or high != int(high):
            raise SpaceError(f"{where}: {option.name} takes whole numbers")
        return Param(option.name, "int", int(low), int(high), log)
    return Param(option.name, "float", float(low), float(high), log)


def _number(text: str, entry: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpaceError(f"--space entry {entry.strip()!r}: {text!r} is not a number") from None


def _value_of(text: str, option: Option, entry: str) -> Any:
    if option.type is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise SpaceError(f"--space entry {entry.strip()!r}: {option.name} takes true or false, not {text!r}")
        return text.lower() in ("true", "1")
    if option.type in (int, float):
        value = _number(text, entry)
        if option.type is int and value != int(value):
            raise SpaceError(f"--space entry {entry.strip()!r}: {option.name} takes whole numbers, not {text!r}")
        return int(value) if option.type is int else value
    if option.choices and not option.open_choices and text not in option.choices:
        raise SpaceError(f"--space entry {entry.strip()!r}: {option.name} takes one of {', '.join(option.choices)}")
    return text


def suggest(trial: Any, params: list[Param]) -> dict[str, Any]:
    """One value for each parameter, asked of an Optuna trial."""
    values = {}
    for p in params:
        if p.type == "choice":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.type == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
    return values


def defaults_inside(kind: ModelKind, params: list[Param]) -> dict[str, Any] | None:
    """The kind's defaults for the searched options when each lies inside the space (the first trial then runs the
    defaults, so a search never ends below them on validation); None when one does not."""
    defaults = kind.defaults()
    values = {}
    for p in params:
        value = defaults.get(p.name)
        inside = (value in p.choices if p.type == "choice"
                  else isinstance(value, (int, float)) and p.low <= value <= p.high)
        if not inside:
            return None
        values[p.name] = value
    return values
