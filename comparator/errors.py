"""Exceptions raised by the comparator.

A small flat hierarchy in the manner of pyca/cryptography: callers catch ``ComparatorError`` or one
of its subclasses; nothing here carries secret material in its message.
"""

from __future__ import annotations


class ComparatorError(Exception):
    """Base class of every error raised by the comparator."""


class InvalidInputError(ComparatorError, ValueError):
    """Bytes from outside (an element, a scalar, a tag, a proof) are malformed.

    Raised for wrong lengths, non-canonical encodings, the identity element and scalars out of
    range.
    """


class DeserializeError(InvalidInputError):
    """An element or scalar failed to deserialize (RFC 9497 section 2.1, DeserializeError)."""


class VerifyError(ComparatorError):
    """A DLEQ proof did not verify (RFC 9497 section 2.2.2, VerifyError)."""


class InverseError(ComparatorError):
    """A scalar had no inverse (RFC 9497 section 3.3.3, InverseError)."""


class InvalidInputElementError(ComparatorError):
    """An input hashed to the identity element (RFC 9497, InvalidInputError)."""


class FieldError(ComparatorError, ValueError):
    """A record's field value is invalid for its field type.

    ``field`` names the field and ``reason`` says why, in words a clerk can act on. The value itself
    is not repeated in the message: it may be personal data.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class IndexFormatError(ComparatorError):
    """A saved match index is truncated, corrupt or of an unknown format version."""


class DeriveKeyPairError(ComparatorError):
    """DeriveKeyPair found no non-zero scalar in 256 attempts (RFC 9497 section 3.2.1)."""
