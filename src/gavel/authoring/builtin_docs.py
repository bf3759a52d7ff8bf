"""One line about each built-in function, for hover and completion (docs/language.md §6 says
it at length). The usage line comes from `lang.functions.SIGNATURES`, so it is always the
checker's own."""

from __future__ import annotations

from gavel.lang.functions import SIGNATURES

DESCRIPTIONS = {
    "len": "Characters of a string, elements of a list or set, keys of an object. Null gives null.",
    "count": "Elements of a list or set. Null gives null.",
    "lower": "The string in lower case. Null gives null.",
    "upper": "The string in upper case. Null gives null.",
    "startswith": "Whether the string starts with the prefix; false for null or a non-string.",
    "endswith": "Whether the string ends with the suffix; false for null or a non-string.",
    "contains": "A substring of a string, a member of a list or set, a key of an object; false for null.",
    "matches": "An unanchored RE2 search; the pattern is a constant string, checked when the bundle compiles.",
    "glob": "Whole-string match: `*` any run of characters, `?` one character; case-sensitive.",
    "sum": "Adds the numbers, or the named member of each object; nulls and missing members are skipped.",
    "min": "The smallest of a list or set (nulls skipped), or of the arguments (a null argument gives null).",
    "max": "The largest of a list or set (nulls skipped), or of the arguments (a null argument gives null).",
    "day_of_week": "`monday` … `sunday`, in UTC unless a zone is given.",
    "hour": "The hour, 0–23, in UTC unless a zone is given.",
    "date": "`YYYY-MM-DD`, in UTC unless a zone is given.",
    "day_of_month": "The day of the month, 1–31, in UTC unless a zone is given.",
    "month": "The month, 1–12, in UTC unless a zone is given.",
    "time": "Parses an ISO-8601 time with a zone; a literal is checked when the bundle compiles.",
    "number": "A decimal string (trimmed, exponent allowed) as a number; a number stays itself.",
    "duration_since": "`now - t`, for a time or an ISO-8601 string; negative for future times.",
}


def builtin_doc(name: str) -> str | None:
    """Markdown for a built-in: its usage and what it does; None for an unknown name."""
    sig = SIGNATURES.get(name)
    if sig is None:
        return None
    lines = [f"```rules\n{sig.usage}\n```"]
    if name in DESCRIPTIONS:
        lines.append(DESCRIPTIONS[name])
    return "\n\n".join(lines)
