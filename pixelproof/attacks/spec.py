"""What an attack is, as plain data: the ``attack`` config group and schedule entries parse here.

Budgets are in [0,1] pixel units; ``"8/255"`` strings are accepted so configs and command lines
can say what they mean (``attack.eps=8/255``).
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

ATTACK_NAMES = ("fgsm", "fgsm_rs", "pgd", "pgd_l2")
CHOOSE = "pass attack=fgsm|fgsm_rs|pgd|pgd_l2"


def pixel_value(value: Any, where: str) -> float:
    """A float, or a ``"a/b"`` string such as ``"8/255"``, as a float."""
    if isinstance(value, bool):
        raise ValueError(f"{where}={value!r} is not a number; pass e.g. 0.03 or 8/255")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(Fraction(str(value).replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{where}={value!r} is not a number; pass e.g. 0.03 or 8/255") from None


@dataclass(frozen=True)
class AttackSpec:
    """One attack and its budget.

    name: ``fgsm`` (one signed-gradient step of eps), ``fgsm_rs`` (FGSM from a uniform random
    start, Wong et al. 2020's fast adversarial training), ``pgd`` (L-inf PGD, Madry et al.) or
    ``pgd_l2``. eps: radius of the ball (L-inf, or L2 for ``pgd_l2``) in [0,1] pixel units.
    alpha: step size; ``None`` picks the usual one (1.25 eps for ``fgsm_rs``, 2.5 eps / steps
    for PGD). steps: PGD iterations. random_start: PGD starts from a random point in the ball.
    """

    name: str
    eps: float
    alpha: float | None = None
    steps: int = 10
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.name not in ATTACK_NAMES:
            raise ValueError(f"attack name {self.name!r} is unknown; {CHOOSE}")
        if self.eps < 0:
            raise ValueError(f"attack.eps={self.eps} must be >= 0 ([0,1] pixel units)")
        if self.name != "pgd_l2" and self.eps > 1:
            raise ValueError(
                f"attack.eps={self.eps} is above 1: budgets are in [0,1] pixel units, "
                f"e.g. attack.eps={self.eps:g}/255"
            )
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"attack.alpha={self.alpha} must be > 0 (or null for the default)")
        if self.steps < 1:
            raise ValueError(f"attack.steps={self.steps} must be >= 1")

    @property
    def step_size(self) -> float:
        if self.alpha is not None:
            return self.alpha
        if self.name == "fgsm_rs":
            return 1.25 * self.eps
        return 2.5 * self.eps / self.steps

    @property
    def label(self) -> str:
        """Short name for logs and tables, e.g. ``pgd-7 eps=8/255``."""
        name = f"{self.name}-{self.steps}" if self.name.startswith("pgd") else self.name
        return f"{name} eps={format_eps(self.eps)}"

    def with_eps(self, eps: float) -> "AttackSpec":
        return AttackSpec(self.name, eps, self.alpha, self.steps, self.random_start)


def format_eps(eps: float) -> str:
    """``8/255`` when eps is a whole number of 8-bit levels, else ``0.03``."""
    levels = eps * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{eps:g}"


def attack_spec(config: Mapping | AttackSpec | None, where: str = "attack") -> AttackSpec | None:
    """Parse one attack config node; ``None`` or an empty node (``attack=none``) gives ``None``."""
    if config is None or isinstance(config, AttackSpec):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"{where} must be a mapping with name/eps/alpha/steps, got {config!r}")
    values = dict(config)
    if not values or values.get("name") in (None, "none"):
        return None
    known = {f.name for f in fields(AttackSpec)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; allowed: {sorted(known)}")
    if "eps" not in values:
        raise ValueError(f"{where} needs an eps ([0,1] pixel units, e.g. {where}.eps=8/255)")
    values["eps"] = pixel_value(values["eps"], f"{where}.eps")
    if values.get("alpha") is not None:
        values["alpha"] = pixel_value(values["alpha"], f"{where}.alpha")
    try:
        return AttackSpec(**values)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
