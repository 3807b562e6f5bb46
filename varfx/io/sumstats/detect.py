"""Which format a header is in, and the columns each field is read from."""

from __future__ import annotations

from ...api import SumstatsFormat
from ...errors import UserError

from .formats import CANONICAL_HEADER, COLUMN_OPTIONS, CUSTOM, registered_formats


# ----------------------------------------------------------------------------------------
# format detection and column mapping


def _apply_overrides(header_upper: list[str], columns: dict[str, str], path, line=None) -> list[str]:
    """Rename mapped columns to their canonical header names (and move clashes aside)."""
    out = list(header_upper)
    targets: dict[int, str] = {}
    for f, name in columns.items():
        if f not in CANONICAL_HEADER:
            raise UserError(f"unknown sumstats field {f!r} in a column mapping (fields: {', '.join(CANONICAL_HEADER)})")
        if name is None:
            continue
        opt = COLUMN_OPTIONS[f]
        if name.upper() not in header_upper:
            raise UserError(
                f"{opt} {name}: no such column; expected one of the header's columns: {' '.join(header_upper)}",
                path=path, line=line,
            )
        i = header_upper.index(name.upper())
        if i in targets:
            other = next(g for g, c in CANONICAL_HEADER.items() if c == targets[i])
            raise UserError(f"{opt} {name}: column already given for {COLUMN_OPTIONS[other]}", path=path, line=line)
        targets[i] = CANONICAL_HEADER[f]
    for i, c in enumerate(out):
        if i not in targets and c in targets.values():
            out[i] = f"{c}#UNUSED"
    for i, c in targets.items():
        out[i] = c
    return out


def _format_columns(fmt: SumstatsFormat, mapped: set) -> dict[str, tuple[str, ...]]:
    """The header names of each field in ``fmt``; a mapped field is its canonical name."""
    cols = dict(fmt.columns)
    for f in mapped:
        cols[f] = (CANONICAL_HEADER[f],)
    return cols


def _has_effect(has) -> bool:
    return has("z") or (has("se") and (has("beta") or has("odds_ratio") or has("hazard_ratio")))


def _find_format(header_upper: list[str], path, *, mapped=frozenset(), forced: str | None = None,
                 line=None) -> SumstatsFormat:
    present = set(header_upper)
    formats, _, by_name = registered_formats()
    custom = by_name.get("custom", CUSTOM)

    def has_fn(fmt):
        cols = _format_columns(fmt, mapped)
        return lambda f: any(name in present for name in cols.get(f, ()))

    def complete(fmt):
        has = has_fn(fmt)
        return all(has(f) for f in fmt.required) and _has_effect(has)

    if forced is not None:
        fmt = by_name[forced.lower()]
        candidates = [fmt]
    else:
        for fmt in formats:
            # a named format is recognised from its own column names, not from mapped ones
            if all(f not in mapped and any(nm in present for nm in fmt.columns.get(f, ())) for f in fmt.signature) \
                    and complete(fmt):
                return fmt
        if mapped and complete(custom):
            return custom
        candidates = formats + ([custom] if mapped else [])
    if forced is not None and complete(candidates[0]):
        return candidates[0]
    # No format matches: blame the closest one and name what it misses.
    if len(header_upper) == 1 and any(d in header_upper[0] for d in ";|"):
        raise UserError(
            f"the header is a single column {header_upper[0]!r}: expected tab-, comma- or "
            "whitespace-separated columns", path=path, line=line,
        )

    def score(fmt):
        has = has_fn(fmt)
        sig = fmt.signature or fmt.required
        return sum(has(f) for f in sig) / max(1, len(sig))

    best = max(candidates, key=score)
    has = has_fn(best)
    cols = _format_columns(best, mapped)
    missing = [f for f in best.required if not has(f)]
    if missing:
        names = " or ".join(cols[missing[0]])
    elif "se" in cols and not has("se") and (has("beta") or has("odds_ratio") or has("hazard_ratio")):
        names = " or ".join(cols["se"])
    else:  # no effect column
        effect = [cols[f][0] for f in ("beta", "odds_ratio", "hazard_ratio", "z") if f in cols]
        names = " or ".join(effect) + (f" (with {cols['se'][0]})" if "se" in cols and "z" not in best.required else "")
    raise UserError(
        f"missing required column {names} (closest format: {best.description}); "
        f"header is: {' '.join(header_upper)}",
        path=path,
    )
