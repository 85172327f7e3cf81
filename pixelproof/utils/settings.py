"""Typed settings: a component declares the config values it owns as a frozen dataclass whose
fields carry their :class:`Rule`, checked on construction.

A bad value raises :class:`ConfigError` with one line, ``key=value: reason (e.g. key=example)``;
``pixelproof.validation`` builds every component's settings from the composed config before
any work, and the components build the same dataclass from their constructor's arguments, so each
rule is written once, next to the code that uses the value. Light on purpose (no torch): it runs
before an entry point's heavy imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf

Check = Callable[[Any], "str | None"]  # None when the value is fine, else what the key allows


class ConfigError(ValueError):
    """A setting outside what it allows; the message is one line naming the key."""


def show(value: Any) -> str:
    """``value`` as a command line writes it: ``null``, ``[a,b]``."""
    if isinstance(value, list | tuple | ListConfig):
        return "[" + ",".join(show(v) for v in value) + "]"
    return "null" if value is None else str(value)


@dataclass(frozen=True)
class Rule:
    """What one setting allows: ``check`` gives the reason a value is refused, ``example`` a
    value that is not."""

    check: Check
    example: str

    def require(self, key: str, value: Any) -> None:
        reason = self.check(value)
        if reason:
            raise ConfigError(f"{key}={show(value)}: {reason} (e.g. {key}={self.example})")


def setting(rule: Rule | None, default: Any = MISSING) -> Any:
    """A settings field checked by ``rule`` (``None``: declared, not checked)."""
    return field(default=default, metadata={"rule": rule})


@dataclass(frozen=True)
class Settings:
    """Base of a component's settings. ``KEY``: where its node is in a run's config (``""``: the
    top level). Values are checked field by field, in declaration order."""

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_fields(self, self.KEY)

    @classmethod
    def from_node(cls, node: Mapping | DictConfig) -> Settings:
        """The settings in ``node``: its keys this class declares (keys it does not declare belong
        to someone else, e.g. a datamodule's ``root``); an absent key keeps its default."""
        values = {f.name: _value(node, f.name) for f in fields(cls)}
        return cls(**{name: value for name, value in values.items() if value is not _ABSENT})


def check_fields(settings: Any, where: str) -> None:
    """Apply each field's rule to its value, naming it ``<where>.<field>``."""
    for item in fields(settings):
        rule = item.metadata.get("rule")
        if rule is not None:
            rule.require(
                f"{where}.{item.name}" if where else item.name, getattr(settings, item.name)
            )


def node_of(cfg: DictConfig, key: str) -> Any:
    """The node at ``key`` of a run's config (``""``: the whole config), or ``None``."""
    return cfg if not key else _value(cfg, key, default=None)


_ABSENT = object()


def _value(node: Mapping | DictConfig, key: str, default: Any = _ABSENT) -> Any:
    """``node[key]`` with interpolations resolved; ``default`` when absent, ``???`` or not
    resolvable yet (``${hydra:...}`` outside a Hydra run). Nodes stay OmegaConf nodes."""
    if not isinstance(node, DictConfig):
        return node.get(key, default) if isinstance(node, Mapping) else default
    try:
        if OmegaConf.is_missing(node, key):
            return default
        return OmegaConf.select(node, key, default=default, throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve yet
        return default


# --------------------------------------------------------------------------------- checks


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def whole(value: Any) -> str | None:
    return None if is_whole(value) else "must be a whole number"


def positive_int(value: Any) -> str | None:
    return None if is_whole(value) and value >= 1 else "must be a whole number >= 1"


def non_negative_int(value: Any) -> str | None:
    return None if is_whole(value) and value >= 0 else "must be a whole number >= 0"


def positive_number(value: Any) -> str | None:
    return None if is_number(value) and value > 0 else "must be a number > 0"


def non_negative_number(value: Any) -> str | None:
    return None if is_number(value) and value >= 0 else "must be a number >= 0"


def probability(value: Any) -> str | None:
    return None if is_number(value) and 0 <= value <= 1 else "must be a number in [0, 1]"


def fraction_below_one(value: Any) -> str | None:
    return None if is_number(value) and 0 <= value < 1 else "must be a number in [0, 1)"


def choice(*allowed: str) -> Check:
    def one_of(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return one_of


def optional(check: Check) -> Check:
    def allow_null(value: Any) -> str | None:
        reason = None if value is None else check(value)
        return None if reason is None else f"{reason}, or null"

    return allow_null
