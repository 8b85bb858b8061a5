"""The ``[[resources]]`` tables of node.toml: a catalogued resource and the source it is read from.

Like every section (``section.Section``), these models refuse keys they do not know, are frozen,
and validate their defaults; integers are strict, so ``true`` is not taken for 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from comparator.fields import FieldType
from provider_node.config.section import Section
from provider_node.config.values import (
    FIELD_NAME_RE,
    KEY_NAME_RE,
    MAX_KEY_VERSION,
    RESOURCE_ID_RE,
    ConfigPath,
    DatabaseUrl,
    Duration,
    between,
    matching,
    problem,
)
from provider_node.core.vocabulary import Answer, Category, ComparisonMode, OprfMode, SharingType

__all__ = ["ResourceConfig", "SourceConfig"]


def _not_blank(query: str) -> str:
    if not query.strip():
        raise problem("must not be empty")
    return query


class SourceConfig(Section):
    """Exactly one of ``url`` + ``query`` (any SQLAlchemy URL) or ``csv`` (with a header row)."""

    url: DatabaseUrl | None = Field(None, repr=False)
    query: Annotated[str, AfterValidator(_not_blank)] | None = Field(None, repr=False)
    csv: ConfigPath | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        has_sql = self.url is not None or self.query is not None
        if has_sql == (self.csv is not None):
            raise problem("give exactly one of source.url + source.query, or source.csv")
        if has_sql and self.url is None:
            raise problem("is required", "url")
        if has_sql and self.query is None:
            raise problem("is required", "query")
        return self


FieldName = Annotated[str, matching(FIELD_NAME_RE, "a field name ([A-Za-z_][A-Za-z0-9_]*)")]
KeyName = Annotated[
    str, matching(KEY_NAME_RE, "a comparison key name (1 to 128 of A-Z, a-z, 0-9, _, + and -)")
]


class ResourceConfig(Section):
    """One ``[[resources]]`` table: a catalogued resource (articles 7-10) and its source."""

    id: Annotated[str, matching(RESOURCE_ID_RE, "a resource id (1 to 64 of a-z, 0-9, _ and -)")]
    name: str
    owner_department: str  # this node's department when left out (filled in by NodeConfig)
    category: Category
    sharing_type: SharingType
    update_period: Duration = "P1D"
    usage_conditions: str = ""
    modes: tuple[ComparisonMode, ...] = Field(
        (ComparisonMode.HASHED, ComparisonMode.BLINDED),
        min_length=1,
        description='a non-empty list, e.g. ["hashed", "blinded"]',
    )
    # Blinded mode's RFC 9497 protocol modes, each with its own key and index: "oprf" (no proof,
    # the default), "voprf" (a batched DLEQ proof that the published key was used).
    oprf_modes: tuple[OprfMode, ...] = Field(
        (OprfMode.OPRF,),
        min_length=1,
        description='a non-empty list, e.g. ["oprf"] or ["oprf", "voprf"]',
    )
    # What comparisons may answer (each its own permission): any department's (unconditional), or
    # what a department may apply for (conditional). "verify" needs the verify table below.
    answers: tuple[Answer, ...] = Field(
        (Answer.MATCH,),
        min_length=1,
        description='a non-empty list, e.g. ["match", "verify", "count"]',
    )
    expose_record_count: StrictBool = False
    # A department's items per day in China on this resource, by mode; absent: the node's
    # [node] max_items_per_department_day / max_hashed_items_per_department_day; 0: no limit.
    max_items_per_department_day: Annotated[StrictInt, between(0, 10**12)] | None = None
    max_hashed_items_per_department_day: Annotated[StrictInt, between(0, 10**12)] | None = None
    key_version: Annotated[StrictInt, between(1, MAX_KEY_VERSION)] = 1
    # Declared before keys: the keys validator reads the validated fields.
    fields: Mapping[FieldName, FieldType] = Field(
        min_length=1, description="a non-empty table of field name = field type"
    )
    keys: Mapping[KeyName, tuple[str, ...]] = Field(
        min_length=1, description="a non-empty table of key name = [field names]"
    )
    # Verification (核验): per comparison key, the fields that can be verified against it.
    verify: Mapping[KeyName, tuple[FieldName, ...]] = Field(
        default_factory=dict,
        description='a table of key name = [field names], e.g. { "id" = [...] }',
    )
    source: SourceConfig = Field(description="a table: { url = ..., query = ... } or { csv = ... }")

    @field_validator("modes", "oprf_modes", "answers")
    @classmethod
    def _listed_once(cls, values: tuple[StrEnum, ...], info: ValidationInfo) -> tuple[StrEnum, ...]:
        for position, value in enumerate(values):
            if value in values[:position]:
                what = (info.field_name or "value").removesuffix("s")
                raise problem(f"{what} {value.value!r} is listed twice", position)
        return values

    @field_validator("fields")
    @classmethod
    def _fields_read_only(cls, fields: Mapping[str, FieldType]) -> Mapping[str, FieldType]:
        return MappingProxyType(dict(fields))

    @field_validator("keys")
    @classmethod
    def _keys_name_declared_fields(
        cls, keys: Mapping[str, tuple[str, ...]], info: ValidationInfo
    ) -> Mapping[str, tuple[str, ...]]:
        # Absent when the fields themselves were refused: their problems are reported instead.
        fields = info.data.get("fields")
        for name, members in keys.items():
            if not members:
                raise problem("must be a non-empty list of field names", name)
            undeclared = [member for member in members if fields and member not in fields]
            if undeclared:
                declared = ", ".join(fields or ())
                raise problem(
                    f"names undeclared field {undeclared[0]!r} (declared: {declared})", name
                )
            if len(set(members)) != len(members):
                raise problem("lists a field twice", name)
        return MappingProxyType(dict(keys))

    @field_validator("verify")
    @classmethod
    def _verify_fields_of_their_keys(
        cls, verify: Mapping[str, tuple[str, ...]], info: ValidationInfo
    ) -> Mapping[str, tuple[str, ...]]:
        fields, keys = info.data.get("fields"), info.data.get("keys")
        for name, members in verify.items():
            if keys is not None and name not in keys:
                raise problem(f"is not a comparison key (keys: {', '.join(keys)})", name)
            if not members:
                raise problem("must be a non-empty list of field names", name)
            for member in members:
                if fields is not None and member not in fields:
                    raise problem(f"names undeclared field {member!r}", name)
                if keys is not None and member in keys[name]:
                    raise problem(f"field {member!r} is part of the key itself", name)
            if len(set(members)) != len(members):
                raise problem("lists a field twice", name)
        return MappingProxyType(dict(verify))

    @model_validator(mode="after")
    def _verify_answer_has_fields(self) -> ResourceConfig:
        if (Answer.VERIFY in self.answers) != bool(self.verify):
            raise problem(
                'answers lists "verify" only together with a verify table naming the fields '
                'that can be verified, e.g. verify = { "id_number" = ["name"] }',
                "verify",
            )
        return self
