"""Build the named callback / logger dicts of a Hydra config (lightning-hydra-template style)."""

import logging

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_named(group: DictConfig | None, what: str) -> list:
    """Instantiate every entry of ``group`` that has a ``_target_``; ``None``/empty -> ``[]``."""
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"the {what} config must be a dict of named entries, got {type(group)}")
    objects = []
    for name, conf in group.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("Instantiating %s <%s> (%s)", what, conf._target_, name)
            objects.append(hydra.utils.instantiate(conf))
    return objects
