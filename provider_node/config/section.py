"""The base of every node.toml model: unknown keys refused, frozen, defaults validated.

Every model refuses keys it does not know (``extra="forbid"``): a misspelt key would otherwise be
a setting silently left at its default. Defaults go through the same validators as written values
(``validate_default``), which is what resolves a default path such as ``data`` against the
configuration file's folder.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    # hide_input_in_errors: str(ValidationError) of a model built in code would print the value,
    # a database URL with its password among them; load_config writes its own messages.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, hide_input_in_errors=True
    )
