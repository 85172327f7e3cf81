"""What an attack is: the registry of attacks (:data:`ATTACKS`) and their budgets as plain data.
The ``attack`` config group and the adversarial schedule's entries parse here.

Budgets are in [0,1] pixel units; ``"8/255"`` strings are accepted so configs and command lines
can say what they mean (``attack.eps=8/255``). Adding an attack is one :data:`ATTACKS` entry and
one ``conf/attack/<name>.yaml``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from torch import nn


@dataclass(frozen=True)
class AttackKind:
    """One attack pixelproof can craft.

    summary: what it does (for docs and errors). build: ``(model, spec) -> torchattacks.Attack``,
    where ``model`` maps images to ``[B, classes]`` logits. default_alpha: the step size when
    ``alpha`` is null, from ``(eps, steps)``. iterative: its label shows the step count.
    l2: eps is an L2 radius (no [0,1] cap).
    """

    summary: str
    build: Callable[[nn.Module, "AttackSpec"], Any]
    default_alpha: Callable[[float, int], float] = lambda eps, steps: eps
    iterative: bool = False
    l2: bool = False


def _fgsm(model, spec):
    import torchattacks

    return torchattacks.FGSM(model, eps=spec.eps)


def _fgsm_rs(model, spec):
    import torchattacks

    return torchattacks.FFGSM(model, eps=spec.eps, alpha=spec.step_size)


def _pgd(model, spec):
    import torchattacks

    kind = torchattacks.PGDL2 if ATTACKS[spec.name].l2 else torchattacks.PGD
    return kind(
        model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=spec.random_start
    )


ATTACKS: dict[str, AttackKind] = {
    "fgsm": AttackKind("one signed-gradient step of eps", _fgsm),
    "fgsm_rs": AttackKind(
        "FGSM from a uniform random start (Wong et al. 2020's fast adversarial training)",
        _fgsm_rs,
        default_alpha=lambda eps, steps: 1.25 * eps,
    ),
    "pgd": AttackKind(
        "L-inf PGD with random start (Madry et al. 2018)",
        _pgd,
        default_alpha=lambda eps, steps: 2.5 * eps / steps,
        iterative=True,
    ),
    "pgd_l2": AttackKind(
        "L2 PGD (eps is the L2 radius)",
        _pgd,
        default_alpha=lambda eps, steps: 2.5 * eps / steps,
        iterative=True,
        l2=True,
    ),
}
CHOOSE = "pass attack=" + "|".join(ATTACKS)


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

    name: a key of :data:`ATTACKS`. eps: radius of the ball (L-inf, or L2 for ``pgd_l2``) in
    [0,1] pixel units. alpha: step size; ``None`` picks the attack's usual one (1.25 eps for
    ``fgsm_rs``, 2.5 eps / steps for PGD). steps: iterations of an iterative attack.
    random_start: PGD starts from a random point in the ball.
    """

    name: str
    eps: float
    alpha: float | None = None
    steps: int = 10
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise ValueError(f"attack name {self.name!r} is unknown; {CHOOSE}")
        if self.eps < 0:
            raise ValueError(f"attack.eps={self.eps} must be >= 0 ([0,1] pixel units)")
        if not ATTACKS[self.name].l2 and self.eps > 1:
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
        return ATTACKS[self.name].default_alpha(self.eps, self.steps)

    @property
    def label(self) -> str:
        """Short name for logs and tables, e.g. ``pgd-7 eps=8/255``."""
        name = f"{self.name}-{self.steps}" if ATTACKS[self.name].iterative else self.name
        return f"{name} eps={format_eps(self.eps)}"

    def build(self, model: nn.Module):
        """The torchattacks object of this attack against ``model`` (images -> class logits)."""
        return ATTACKS[self.name].build(model, self)


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
