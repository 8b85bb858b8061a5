"""Personal data in the free text a department sends: a resident ID number or a mobile number.

Purposes, request ids and duties are kept in the audit log for at least two years and read by
compliance officers, operators and auditors (articles 31, 35): they say what a comparison is
for, never whom it is about. A record value typed into them would put the data the comparison
protects into every export. The check looks for what can be recognised without guessing:

* a resident ID number (18 characters with a valid check character, or the old 15 digits with a
  possible birth date), ASCII or full-width digits;
* a mainland mobile number (11 digits starting 13-19).

Neither counts inside a longer run of letters and digits, so a request id of hexadecimal digits
(as the SDK makes one) never matches by chance.

A case number (办件编号) or a date passes; a name cannot be told from other words and is not
looked for. Discrepancy descriptions keep their stricter rule (no six digits in a row).
"""

from __future__ import annotations

import re
import unicodedata

from comparator.errors import FieldError
from comparator.fields import FieldType, normalize
from provider_node.core.errors import InvalidRequestError

__all__ = ["check_free_text", "personal_data_in"]

_ID_18 = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_ID_15 = re.compile(r"(?<![0-9A-Za-z])[0-9]{15}(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9A-Za-z])")


def personal_data_in(text: str) -> str | None:
    """What kind of personal data ``text`` holds ("a resident ID number", "a mobile number"),
    or None. Full-width digits count as digits."""
    folded = unicodedata.normalize("NFKC", text)
    for candidate in (*_ID_18.findall(folded), *_ID_15.findall(folded)):
        try:
            normalize(FieldType.CN_RESIDENT_ID, candidate)
        except FieldError:
            continue
        return "a resident ID number"
    if _MOBILE.search(folded):
        return "a mobile number"
    return None


def check_free_text(field: str, text: str) -> None:
    """Refuse ``text`` (the ``field`` of a request) when it holds personal data."""
    found = personal_data_in(text)
    if found is not None:
        raise InvalidRequestError(
            f"{field} holds {found}: it is kept in the audit log and read by auditors, so it "
            "says what the comparison is for (a duty, a case number), never whom it is about"
        )
