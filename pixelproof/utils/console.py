"""One console for the entry points that train: every message once, no advert.

Importing ``lightning`` gives its logger a console handler of its own and keeps it propagating
to the root logger, where Hydra's console handler prints it again: every Lightning line twice.
(Imported before Hydra configures logging, ``lightning.pytorch`` and ``lightning.fabric`` get a
handler each and stop propagating instead, and their lines miss the run's log file.)
:func:`quiet_lightning` routes them all through the root's handlers once those are configured.
"""

from __future__ import annotations

import logging
import warnings

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
# Lightning's rank_zero_info adverts ("💡 Tip: ... try installing litlogger"), on every Trainer
_ADVERT = "💡 Tip:"


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERT)


def quiet_lightning() -> None:
    """Route Lightning's log records through the root logger's handlers (Hydra's console and the
    run's log file) when it has some, drop its adverts, and hide one deprecation of its own."""
    import lightning  # noqa: F401  (its import adds the handlers removed here)

    if logging.getLogger().handlers:  # without them (a plain script) Lightning's handler stays
        for name in _LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # Lightning's own, never Hydra's file
                    logger.removeHandler(handler)
            logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_NoAdverts())
    # Lightning 2.6's CombinedLoader builds torch's LeafSpec, deprecated in torch 2.10+: nothing
    # pixelproof calls or can change (this exact message from that one module only)
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
