"""Text as every field type first sees it: invisible characters dropped, NFKC, trimmed.

Shared by the field types' rules in ``fields``; the list of invisible characters is fixed here,
not read from the running Python's Unicode tables, so both sides remove the same characters.
"""

from __future__ import annotations

import re
import unicodedata

from comparator.errors import FieldError

__all__ = ["is_ascii_digits", "text_of"]

_nfkc = unicodedata.normalize


# Invisible characters, removed before anything else: every format character (Unicode category
# Cf, as of Unicode 14.0: zero-width spaces and joiners, the word joiner, the byte order mark, the
# soft hyphen, bidirectional marks...) and the variation selectors (which pick a glyph, never
# another character). They come from web pages, PDFs and other systems and cannot be seen when
# typed or checked, so two equal-looking values must not differ by them. The list is fixed here,
# not read from the running Python's Unicode tables, so both sides remove the same characters.
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"  # Cf
    "\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"  # variation selectors
)
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]+")


def text_of(value: object, field: str) -> str:
    """The value without invisible characters, NFKC-normalised and trimmed; refuses non-text."""
    if not isinstance(value, str):
        if value is None:
            raise FieldError(field, "is missing")
        raise FieldError(field, f"must be text, not {type(value).__name__}")
    # NFKC folds full-width letters and digits to their ASCII forms; pure ASCII is already NFKC.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates come from mis-decoded files; they have no UTF-8 encoding to compare.
            raise FieldError(field, "contains characters that are not valid text") from None
        # Letters only (most names) have none. Removed before NFKC, so that a letter and an accent
        # a joiner kept apart still compose.
        if not value.isalpha() and _INVISIBLE_RE.search(value) is not None:
            value = _INVISIBLE_RE.sub("", value)
        value = _nfkc("NFKC", value)
    value = value.strip()
    if not value:
        raise FieldError(field, "is empty")
    return value


def is_ascii_digits(s: str) -> bool:
    # str.isdigit() alone also accepts Arabic-Indic, superscript and other Unicode digits.
    return s.isascii() and s.isdigit()
