"""The node's catalog (articles 7-10, 24): resources as declared in the configuration.

A ``Resource`` is what the servicer reasons about: its comparison keys as comparator objects, its
sharing type and modes, and the domain separating its encodings from every other resource's and
key version's. ``resource_to_proto`` makes the catalog entry a requester sees; it carries a record
count only where the operator set ``expose_record_count = true``.

Besides its comparison keys, a resource that offers verification has one **verification key** per
(comparison key, verifiable field) (``comparator.verification``); ``index_keys`` names every key
the loader builds an index for.

Blinded mode comes in the RFC 9497 protocol modes the resource offers (``oprf_modes``): modeOPRF
(the default) and modeVOPRF, each with its own key and its own index. Index modes name them
(``index_mode``): ``hashed``, ``blinded`` (modeOPRF) and ``blinded-voprf`` (modeVOPRF); a request
picks with ``Header.verifiable``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from comparator import oprf
from comparator.canonical import ComparisonKey, Domain, FieldSpec
from comparator.fields import FieldType
from comparator.index import MatchIndex
from comparator.verification import verification_key, verification_key_name
from provider_node.config import NodeConfig, ResourceConfig, SourceConfig
from provider_node.core.vocabulary import Answer, Category, ComparisonMode, OprfMode, SharingType

__all__ = [
    "BLINDED_VOPRF_INDEX",
    "OPRF_PROTOCOL_MODES",
    "Resource",
    "ServedResource",
    "UnknownComparisonKeyError",
    "build_catalog",
    "index_mode",
]

#: The comparator's mode for each (its keys are derived with it: DeriveKeyPair names the mode).
OPRF_PROTOCOL_MODES = {OprfMode.OPRF: oprf.Mode.OPRF, OprfMode.VOPRF: oprf.Mode.VOPRF}
#: The index mode of modeVOPRF's blinded indexes (modeOPRF's is ``blinded``).
BLINDED_VOPRF_INDEX = "blinded-voprf"


def index_mode(mode: ComparisonMode | str, verifiable: bool = False) -> str:
    """The index a comparison in ``mode`` is matched against: ``hashed``, ``blinded`` (modeOPRF)
    or ``blinded-voprf`` (modeVOPRF, ``verifiable``)."""
    if mode == ComparisonMode.BLINDED and verifiable:
        return BLINDED_VOPRF_INDEX
    return str(mode)


class UnknownComparisonKeyError(KeyError):
    """The resource declares no comparison key of that name."""

    def __init__(self, resource_id: str, key_name: str, known: tuple[str, ...]) -> None:
        super().__init__(key_name)
        self.resource_id = resource_id
        self.key_name = key_name
        self.known = known

    def __str__(self) -> str:
        return (
            f"resource {self.resource_id!r} has no comparison key {self.key_name!r} "
            f"(keys: {', '.join(self.known)})"
        )


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    owner_department: str
    category: Category
    fields: Mapping[str, FieldType]
    comparison_keys: Mapping[str, ComparisonKey]
    sharing_type: SharingType
    update_period: str
    usage_conditions: str
    modes: tuple[ComparisonMode, ...]
    key_version: int
    expose_record_count: bool
    source: SourceConfig
    #: What comparisons may answer: to anyone (unconditional), or to apply for (conditional).
    answers: tuple[Answer, ...] = (Answer.MATCH,)
    #: Per comparison key, the fields that can be verified against it.
    verify: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Blinded mode's RFC 9497 protocol modes (each its own key and index).
    oprf_modes: tuple[OprfMode, ...] = (OprfMode.OPRF,)

    @classmethod
    def from_config(cls, config: ResourceConfig) -> Resource:
        field_types = {name: kind.value for name, kind in config.fields.items()}
        keys = {
            name: ComparisonKey.from_names(name, members, field_types)
            for name, members in config.keys.items()
        }
        return cls(
            id=config.id,
            name=config.name,
            owner_department=config.owner_department,
            category=config.category,
            fields=MappingProxyType(dict(config.fields)),
            comparison_keys=MappingProxyType(keys),
            sharing_type=config.sharing_type,
            update_period=config.update_period,
            usage_conditions=config.usage_conditions,
            modes=config.modes,
            key_version=config.key_version,
            expose_record_count=config.expose_record_count,
            source=config.source,
            answers=config.answers,
            verify=MappingProxyType(dict(config.verify)),
            oprf_modes=config.oprf_modes,
        )

    @property
    def comparable(self) -> bool:
        """False for ``not_shared`` resources: catalogued, never compared (article 24)."""
        return self.sharing_type is not SharingType.NOT_SHARED

    def comparison_key(self, key_name: str) -> ComparisonKey:
        try:
            return self.comparison_keys[key_name]
        except KeyError:
            raise UnknownComparisonKeyError(
                self.id, key_name, tuple(self.comparison_keys)
            ) from None

    @property
    def index_keys(self) -> dict[str, ComparisonKey]:
        """Every key indexed for this resource: the comparison keys, then the verification keys."""
        keys = dict(self.comparison_keys)
        for key_name, field_names in self.verify.items():
            key = self.comparison_keys[key_name]
            for name in field_names:
                spec = FieldSpec(name, self.fields[name])
                keys[verification_key_name(key_name, name)] = verification_key(key, spec)
        return keys

    def domain(self, key_name: str) -> Domain:
        """The domain separating this resource, key and key version's encodings from all others.

        ``key_name`` is a comparison key's or a verification key's (``index_keys``)."""
        if key_name not in self.comparison_keys and key_name not in self.index_keys:
            self.comparison_key(key_name)  # raises, naming the comparison keys
        return Domain(self.id, key_name, self.key_version)

    def verifiable(self, key_name: str) -> tuple[str, ...]:
        """The fields that can be verified against ``key_name`` (none when it offers none)."""
        return self.verify.get(key_name, ())

    def offers(self, mode: ComparisonMode | str) -> bool:
        return mode in self.modes

    @property
    def offered_oprf_modes(self) -> tuple[OprfMode, ...]:
        """Blinded mode's protocol modes, none when the resource does not offer blinded mode."""
        return self.oprf_modes if self.offers(ComparisonMode.BLINDED) else ()

    def offers_oprf(self, verifiable: bool) -> bool:
        """Whether blinded comparisons in modeVOPRF (``verifiable``) or modeOPRF are offered."""
        return (OprfMode.VOPRF if verifiable else OprfMode.OPRF) in self.offered_oprf_modes

    @property
    def index_modes(self) -> tuple[str, ...]:
        """The index modes built for every index key: ``hashed``, ``blinded``, ``blinded-voprf``."""
        found: list[str] = []
        for mode in self.modes:
            if mode == ComparisonMode.BLINDED:
                found += [index_mode(mode, m is OprfMode.VOPRF) for m in self.oprf_modes]
            else:
                found.append(index_mode(mode))
        return tuple(found)


def build_catalog(config: NodeConfig) -> dict[str, Resource]:
    """Every configured resource by id, in configuration order."""
    return {resource.id: Resource.from_config(resource) for resource in config.resources}


@dataclass
class ServedResource:
    """A catalogued resource with what the node needs to compare against it.

    ``hmac_key`` and the OPRF private keys inside ``oprf_servers`` are secrets: never logged.
    ``oprf_public_key`` is modeVOPRF's (None unless the resource offers modeVOPRF).
    """

    resource: Resource
    oprf_servers: Mapping[OprfMode, oprf.OprfServer | oprf.VoprfServer]
    oprf_public_key: bytes | None
    hmac_key: bytes = field(repr=False)
    indexes: dict[tuple[str, str], MatchIndex] = field(default_factory=dict)
    last_refresh: _dt.datetime | None = None

    def oprf_server(self, verifiable: bool) -> oprf.OprfServer | oprf.VoprfServer | None:
        """The server of modeVOPRF (``verifiable``) or modeOPRF; None when not offered."""
        return self.oprf_servers.get(OprfMode.VOPRF if verifiable else OprfMode.OPRF)
