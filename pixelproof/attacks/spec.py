"""What an attack is: the registry of attacks (:data:`ATTACKS`) and their budgets as plain data.
The ``attack`` config group and the adversarial schedule's entries parse here.

Budgets are in [0,1] pixel units; ``"8/255"`` strings are accepted so configs and command lines
can say what they mean (``attack.eps=8/255``). Adding an attack is one :data:`ATTACKS` entry and
one ``conf/attack/<name>.yaml``.

**AutoAttack and a one-logit detector.** Every attack sees a detector through
:class:`~pixelproof.attacks.two_class.TwoClassLogits` (``[-z/2, z/2]``), a two-class model. Of
AutoAttack's four attacks (Croce & Hein 2020) two apply as they are and are registered here:
APGD-CE (``apgd``: its cross-entropy is the detector's BCE) and the black-box Square attack
(``square``: its margin loss is the logit ``z`` itself). The other two do not. APGD-DLR's loss
divides by ``z_(1) - z_(3)``, the gap to the *third* largest logit, which needs >= 3 classes
(torchattacks indexes past the second); the targeted APGD-T and FAB-T take each of the top
other classes as a target in turn, and with two classes the only target is the other class, so
targeting it is the untargeted attack again (APGD-T's targeted DLR loss also needs >= 4
classes: it divides by ``z_(1) - (z_(3) + z_(4)) / 2``). So AutoAttack's ensemble on a
one-logit detector reduces to APGD-CE followed by Square, which is what ``robustness=strong``
runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pixelproof.utils.settings import (
    ConfigError,
    Rule,
    check_fields,
    is_number,
    non_negative_number,
    positive_int,
    positive_number,
    setting,
    show,
)

if TYPE_CHECKING:  # no torch at import: run configs are checked with this before torch loads
    from torch import nn


@dataclass(frozen=True)
class AttackKind:
    """One attack pixelproof can craft.

    summary: what it does (for docs and errors). build: ``(model, spec) -> torchattacks.Attack``,
    where ``model`` maps images to ``[B, classes]`` logits. default_alpha: the step size when
    ``alpha`` is null, from ``(eps, steps)``. iterative: its label shows the step count.
    l2: eps is an L2 radius (no [0,1] cap). options: the :class:`AttackSpec` fields besides
    ``name`` and ``eps`` it reads; a config that sets another one is refused (it would be
    silently ignored). gradients: it differentiates through the model (white-box); ``False``
    for a black-box (query-only) attack. tag: the name part of its label, when the default
    (``name`` or ``name-steps``) says too little.
    """

    summary: str
    build: Callable[[nn.Module, AttackSpec], Any]
    default_alpha: Callable[[float, int], float] = lambda eps, steps: eps
    iterative: bool = False
    l2: bool = False
    options: tuple[str, ...] = ("alpha", "steps", "random_start")
    gradients: bool = True
    tag: Callable[[AttackSpec], str] | None = None


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


def _tpgd(model, spec):
    import torchattacks

    return torchattacks.TPGD(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps)


def _nfgsm(model, spec):
    from pixelproof.attacks.nfgsm import NFGSM

    return NFGSM(model, eps=spec.eps, alpha=spec.step_size, k=spec.k)


def _apgd(model, spec):
    from pixelproof.attacks.autoattack import APGDCE

    return APGDCE(model, eps=spec.eps, steps=spec.steps, n_restarts=spec.n_restarts)


def _square(model, spec):
    from pixelproof.attacks.autoattack import SquareLinf

    return SquareLinf(model, eps=spec.eps, n_queries=spec.n_queries, n_restarts=spec.n_restarts)


def _apgd_tag(spec: AttackSpec) -> str:
    restarts = f"x{spec.n_restarts}" if spec.n_restarts > 1 else ""
    return f"apgd-ce-{spec.steps}{restarts}"


def _square_tag(spec: AttackSpec) -> str:
    restarts = f"x{spec.n_restarts}" if spec.n_restarts > 1 else ""
    return f"square-{spec.n_queries}{restarts}"


ATTACKS: dict[str, AttackKind] = {
    "fgsm": AttackKind("one signed-gradient step of eps", _fgsm, options=()),
    "fgsm_rs": AttackKind(
        "FGSM from a uniform random start (Wong et al. 2020's fast adversarial training)",
        _fgsm_rs,
        default_alpha=lambda eps, steps: 1.25 * eps,
        options=("alpha",),
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
    "tpgd": AttackKind(
        "TRADES's inner maximisation (Zhang et al. 2019): L-inf PGD on the KL divergence from "
        "the clean prediction, from a tiny random start; needs no label",
        _tpgd,
        default_alpha=lambda eps, steps: 2.5 * eps / steps,
        iterative=True,
        options=("alpha", "steps"),
    ),
    "nfgsm": AttackKind(
        "N-FGSM (de Jorge et al. 2022): FGSM step of alpha (eps) from uniform noise in "
        "[-k eps, k eps], no projection onto the eps ball; single-step training that does not "
        "collapse",
        _nfgsm,
        options=("alpha", "k"),
    ),
    "apgd": AttackKind(
        "APGD-CE (Croce & Hein 2020), AutoAttack's first stage: L-inf, step-size free, "
        "n_restarts random restarts",
        _apgd,
        iterative=True,
        options=("steps", "n_restarts"),
        tag=_apgd_tag,
    ),
    "square": AttackKind(
        "Square attack (Andriushchenko et al. 2020), AutoAttack's black-box stage: L-inf random "
        "search of n_queries queries per restart, no gradients",
        _square,
        options=("n_queries", "n_restarts"),
        gradients=False,
        tag=_square_tag,
    ),
}
CHOOSE = "pass attack=" + "|".join(ATTACKS)


def _budget(value: Any) -> float | None:
    """A number, or an ``"a/b"`` string such as ``"8/255"``, as a float; ``None`` if neither."""
    if isinstance(value, str):
        try:
            value = float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            return None
    return float(value) if is_number(value) else None


def _budget_reason(value: Any) -> str | None:
    return non_negative_number(_budget(value)) and "must be a number >= 0 or a fraction a/b"


#: a budget: [0,1] pixel units (an L2 radius for pgd_l2), also any other amount >= 0 a fraction
#: says well, such as a masking check's 64/255
BUDGET = Rule(_budget_reason, "8/255")
STEP = Rule(positive_number, "2/255")  # alpha, once parsed: null picks the attack's own


def pixel_value(value: Any, where: str) -> float:
    """``value`` (a number >= 0 or an ``"a/b"`` string such as ``"8/255"``) as a float; a
    :class:`ConfigError` naming ``where`` otherwise. The one parser of budgets."""
    BUDGET.require(where, value)
    return _budget(value)


@dataclass(frozen=True)
class AttackSpec:
    """One attack and its budget.

    name: a key of :data:`ATTACKS`. eps: radius of the ball (L-inf, or L2 for ``pgd_l2``) in
    [0,1] pixel units. alpha: step size; ``None`` picks the attack's usual one (1.25 eps for
    ``fgsm_rs``, 2.5 eps / steps for PGD, eps for N-FGSM). steps: iterations of an iterative
    attack. random_start: PGD starts from a random point in the ball. n_restarts: APGD and
    Square restarts (each attacks the images still classified correctly). n_queries: Square's
    queries per restart. k: N-FGSM's noise, uniform in ``[-k eps, k eps]``.
    """

    name: str
    eps: float  # also "8/255": parsed on construction
    alpha: float | None = None  # likewise
    steps: int = setting(Rule(positive_int, "10"), 10)
    random_start: bool = True
    n_restarts: int = setting(Rule(positive_int, "1"), 1)
    n_queries: int = setting(Rule(positive_int, "1000"), 1000)
    k: float = setting(Rule(non_negative_number, "2"), 2.0)
    where: InitVar[str] = "attack"  # the config node, for messages: attack, robustness.attacks[0]

    def __post_init__(self, where: str) -> None:
        if self.name not in ATTACKS:
            raise ConfigError(f"{where}: attack name {self.name!r} is unknown; {CHOOSE}")
        eps = pixel_value(self.eps, f"{where}.eps")
        if not ATTACKS[self.name].l2 and eps > 1:
            raise ConfigError(
                f"{where}.eps={show(self.eps)}: must be at most 1, budgets are in [0,1] pixel "
                f"units (e.g. {where}.eps={eps:g}/255)"
            )
        object.__setattr__(self, "eps", eps)  # frozen: the parsed value replaces the string
        if self.alpha is not None:
            alpha = pixel_value(self.alpha, f"{where}.alpha")
            STEP.require(f"{where}.alpha", alpha)
            object.__setattr__(self, "alpha", alpha)
        check_fields(self, where)

    @property
    def step_size(self) -> float:
        if self.alpha is not None:
            return self.alpha
        return ATTACKS[self.name].default_alpha(self.eps, self.steps)

    @property
    def label(self) -> str:
        """Short name for logs and tables, e.g. ``pgd-7 eps=8/255``."""
        return f"{self.tag} eps={format_eps(self.eps)}"

    @property
    def tag(self) -> str:
        """The label without the budget, e.g. ``pgd-7`` or ``apgd-ce-50x2`` (2 restarts)."""
        kind = ATTACKS[self.name]
        if kind.tag is not None:
            return kind.tag(self)
        return f"{self.name}-{self.steps}" if kind.iterative else self.name

    @property
    def gradients(self) -> bool:
        """Whether the attack differentiates through the model (white-box)."""
        return ATTACKS[self.name].gradients

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
        raise ConfigError(f"{where} has unknown keys {unknown}; allowed: {sorted(known)}")
    if values.get("name") in ATTACKS:
        kind = ATTACKS[values["name"]]
        defaults = {f.name: f.default for f in fields(AttackSpec)}
        ignored = sorted(
            key
            for key, value in values.items()
            if key not in ("name", "eps", *kind.options) and value not in (None, defaults[key])
        )
        if ignored:
            takes = ", ".join(["eps", *kind.options])
            raise ConfigError(
                f"{where}: {values['name']} does not use {ignored} (it takes {takes})"
            )
    if "eps" not in values:
        raise ConfigError(f"{where} needs an eps ([0,1] pixel units, e.g. {where}.eps=8/255)")
    return AttackSpec(**values, where=where)
