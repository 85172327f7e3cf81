"""Robust evaluation: ACC@0.5 and AP of a detector, clean, under attacks over an eps grid, and
under RINE's non-adversarial perturbations; per generator and their unweighted mean (the RINE /
UFD protocol). Writes ``robustness.csv`` (long format), ``robustness.md`` and ``robustness.png``
(accuracy vs eps, one line per attack).

Attacks are of three threats: white-box (gradients of the evaluated detector: FGSM, PGD,
APGD-CE), black-box (queries only: Square) and transfer (crafted with the gradients of another
detector, ``source``, and scored on the evaluated one; rows ``transfer pgd-10 eps=4/255``).

**Masking checks** (``masking_checks``; Carlini et al. 2019, "On Evaluating Adversarial
Robustness"): a robust accuracy is only believed when the attacks behave as attacks do. Each
violation is written into the ``flags`` column next to the number it concerns (never instead
of it) and listed under "Masking checks" in ``robustness.md``:

- ``large-eps``: at a large eps (64/255) PGD must bring accuracy to ~0 (at most
  ``large_eps_max_acc``): images can be made into anything there, so an attack that cannot
  get there is not following the gradient (masked, shattered or vanishing gradients).
- ``more-effort``: an attack with more steps, restarts or queries (PGD-50 vs PGD-10, APGD with
  more restarts) is never weaker than the same attack with fewer at the same eps.
- ``black-box``: a black-box or transfer attack is never more successful than the best
  white-box attack at the same eps (the white-box ones see strictly more).
- ``eps-monotone``: the accuracy under each attack never rises with eps (clean counts as eps 0).

Differences within ``tolerance`` are sampling noise and are not flagged. The checks run on the
mean over generators and on each generator. A flag asks for a look, not for a verdict: Square
with few queries is a noisy random search and can trip ``eps-monotone`` or stay far above the
white-box attacks on its own, and small test sets make every difference coarse.
"""

import csv
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pixelproof.attacks.craft import craft
from pixelproof.attacks.module_modes import eval_mode
from pixelproof.attacks.spec import ATTACKS, AttackSpec, attack_spec, format_eps, pixel_value
from pixelproof.evaluation.generator_table import MEAN, generator_table
from pixelproof.evaluation.perturbations import perturbation
from pixelproof.evaluation.robustness_settings import RobustnessSettings
from pixelproof.evaluation.score_progress import ScoreProgress
from pixelproof.utils.atomic import atomic_open, write_atomic

log = logging.getLogger(__name__)

CSV_COLUMNS = ["condition", "kind", "name", "strength", "generator", "acc", "ap", "images", "flags"]
# strength of each perturbation, as the table shows it
STRENGTH_NAMES = {"jpeg": "quality", "blur": "sigma", "noise": "std", "crop": "fraction"}
WHITE_BOX, BLACK_BOX, TRANSFER = "white-box", "black-box", "transfer"
# the attack options that make an attack stronger when raised (check "more-effort")
EFFORT = ("steps", "n_restarts", "n_queries")

Transform = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
# p(fake) and labels per condition label and generator: {label: {generator: (probs, labels)}}
Scores = dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class Condition:
    """One row of the table: how the test images are altered before the detector sees them.

    kind: ``clean``, ``attack`` (the grid's attacks), ``transfer``, ``check`` (attacks that only
    the masking checks asked for) or ``perturbation``. threat: ``white-box``, ``black-box`` or
    ``transfer`` for attacks, empty otherwise. role: ``large_eps`` for the masking check's
    large-eps attack.
    """

    kind: str
    name: str  # clean, fgsm, pgd, apgd, square, jpeg, blur, ...
    strength: float  # eps for attacks, the perturbation's parameter otherwise, 0 when clean
    label: str
    apply: Transform
    spec: AttackSpec | None = None
    threat: str = ""
    role: str = ""

    @property
    def series(self) -> str:
        """The attack without its eps (``pgd-10``, ``transfer pgd-10``): one line of the plot."""
        return self.label.split(" eps=")[0]


@dataclass(frozen=True)
class MaskingChecks:
    """The ``masking_checks`` block of a robustness config (see the module docstring)."""

    tolerance: float = 0.02
    large_eps: float = 64 / 255
    large_eps_attack: Mapping = field(default_factory=lambda: {"name": "pgd", "steps": 10})
    large_eps_max_acc: float = 0.05
    stronger: tuple[Mapping, ...] = ({"name": "pgd", "steps": 50},)
    stronger_eps: tuple[float, ...] | None = None  # None: every eps of the grid


def masking_checks(config: Mapping | None) -> MaskingChecks | None:
    """Parse ``robustness.masking_checks``; ``None``, ``{}`` or ``enabled: false``: no checks."""
    where = "robustness.masking_checks"
    if config is None or isinstance(config, MaskingChecks):
        return config
    values = dict(config)
    if not values or not values.pop("enabled", True):
        return None
    known = {f.name for f in fields(MaskingChecks)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {unknown}; allowed: {sorted(known | {'enabled'})}"
        )
    for key in ("tolerance", "large_eps", "large_eps_max_acc"):
        if key in values:
            values[key] = pixel_value(values[key], f"{where}.{key}")  # a number >= 0
    if "large_eps_attack" in values:  # over the default, so {steps: 20} is PGD-20
        values["large_eps_attack"] = {
            **MaskingChecks().large_eps_attack,
            **dict(values["large_eps_attack"] or {}),
        }
    if "stronger" in values:
        values["stronger"] = tuple(dict(a) for a in values["stronger"] or [])
    if values.get("stronger_eps") is not None:
        values["stronger_eps"] = tuple(
            pixel_value(e, f"{where}.stronger_eps[{i}]")
            for i, e in enumerate(values["stronger_eps"])
        )
    return MaskingChecks(**values)


def _attack_condition(
    spec: AttackSpec, kind: str, source: nn.Module | None = None, role: str = ""
) -> Condition:
    if source is not None:
        return Condition(
            kind, spec.name, spec.eps, f"transfer {spec.label}",
            lambda model, x, y, g, spec=spec: craft(source, spec, x, y),
            spec, TRANSFER, role,
        )  # fmt: skip
    return Condition(
        kind, spec.name, spec.eps, spec.label,
        lambda model, x, y, g, spec=spec: craft(model, spec, x, y),
        spec, WHITE_BOX if spec.gradients else BLACK_BOX, role,
    )  # fmt: skip


def _gradient_attack(attack: Mapping) -> bool:
    kind = ATTACKS.get(dict(attack).get("name"))
    return kind is None or kind.gradients  # an unknown name is refused by attack_spec later


def robustness_conditions(cfg: Mapping, source: nn.Module | None = None) -> list[Condition]:
    """Clean first, then every attack at every eps, the transfer attacks (crafted on ``source``,
    when given), the attacks the masking checks need, then every perturbation at every
    strength."""
    conditions = [Condition("clean", "clean", 0.0, "clean", lambda model, x, y, g: x)]
    grid = RobustnessSettings.from_node(cfg).eps
    attacks = list(cfg.get("attacks") or [])
    for i, attack in enumerate(attacks):
        for eps in grid:
            spec = attack_spec({**dict(attack), "eps": eps}, f"robustness.attacks[{i}]")
            conditions.append(_attack_condition(spec, "attack"))
    if source is not None:
        transfer = cfg.get("transfer_attacks")
        where = "robustness.transfer_attacks"
        if transfer is None:  # the gradient attacks of the grid
            where = "robustness.attacks"
            transfer = [a for a in attacks if _gradient_attack(a)]
        for i, attack in enumerate(transfer):
            for eps in grid:
                spec = attack_spec({**dict(attack), "eps": eps}, f"{where}[{i}]")
                if not spec.gradients:
                    raise ValueError(f"{where}[{i}]: {spec.name} uses no gradients to transfer")
                conditions.append(_attack_condition(spec, "transfer", source))
    checks = masking_checks(cfg.get("masking_checks"))
    if checks is not None:
        where = "robustness.masking_checks"
        large = attack_spec(
            {**checks.large_eps_attack, "eps": checks.large_eps}, f"{where}.large_eps_attack"
        )
        extra = [_attack_condition(large, "check", role="large_eps")]
        for i, attack in enumerate(checks.stronger):
            for eps in grid if checks.stronger_eps is None else checks.stronger_eps:
                spec = attack_spec({**attack, "eps": eps}, f"{where}.stronger[{i}]")
                extra.append(_attack_condition(spec, "check"))
        labels = {c.label for c in conditions}
        for condition in extra:  # an attack the grid already runs is not run twice
            if condition.label not in labels:
                conditions.append(condition)
                labels.add(condition.label)
            elif condition.role:  # the grid's own row is the large-eps check
                conditions = [
                    replace(c, role=condition.role) if c.label == condition.label else c
                    for c in conditions
                ]
    for name, strengths in (cfg.get("perturbations") or {}).items():
        function = perturbation(name)
        for strength in strengths:
            value = pixel_value(strength, f"robustness.perturbations.{name}")
            conditions.append(
                Condition(
                    "perturbation",
                    name,
                    value,
                    f"{name} {STRENGTH_NAMES[name]}={strength}",
                    lambda model, x, y, g, f=function, v=value: f(x, v, g),
                )
            )
    labels = [c.label for c in conditions]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"robustness lists these conditions more than once: {repeated}")
    return conditions


def _stronger(strong: AttackSpec, weak: AttackSpec) -> bool:
    """``strong`` is ``weak`` with more steps, restarts or queries (and no fewer of any)."""
    if strong.name != weak.name:
        return False
    options = [o for o in EFFORT if o in ATTACKS[strong.name].options]
    more = [getattr(strong, o) - getattr(weak, o) for o in options]
    return bool(more) and min(more) >= 0 and max(more) > 0


def masking_flags(
    conditions: Sequence[Condition], acc: Mapping[str, float], checks: MaskingChecks
) -> dict[str, list[str]]:
    """The masking checks on one set of accuracies (``{condition label: ACC}``): ``{label:
    [flag, ...]}`` for every condition, each flag ``"<check>: <what was seen>"``."""
    flags: dict[str, list[str]] = {c.label: [] for c in conditions}
    tol = checks.tolerance
    attacks = [c for c in conditions if c.kind in ("attack", "check", "transfer")]
    attacks = [c for c in attacks if not math.isnan(acc.get(c.label, math.nan))]
    # (a) a large eps brings accuracy to ~0
    for c in attacks:
        if c.role == "large_eps" and acc[c.label] > checks.large_eps_max_acc:
            flags[c.label].append(
                f"large-eps: ACC {acc[c.label]:.3f} > {checks.large_eps_max_acc:g} at "
                f"eps={format_eps(c.strength)}"
            )
    # (b) more steps / restarts / queries never weaken an attack
    own = [c for c in attacks if c.threat != TRANSFER]
    for strong in own:
        for weak in own:
            if (
                weak.strength == strong.strength
                and _stronger(strong.spec, weak.spec)
                and acc[strong.label] > acc[weak.label] + tol
            ):
                flags[strong.label].append(
                    f"more-effort: ACC {acc[strong.label]:.3f} > {acc[weak.label]:.3f} under "
                    f"{weak.spec.tag}"
                )
    # (c) black-box and transfer attacks never beat the white-box ones
    for outside in (c for c in attacks if c.threat in (BLACK_BOX, TRANSFER)):
        white = [c for c in attacks if c.threat == WHITE_BOX and c.strength == outside.strength]
        if not white:
            continue
        best = min(white, key=lambda c: acc[c.label])
        if acc[outside.label] < acc[best.label] - tol:
            flags[outside.label].append(
                f"black-box: ACC {acc[outside.label]:.3f} < {acc[best.label]:.3f}, the best "
                f"white-box ({best.spec.tag})"
            )
    # (d) accuracy never rises with eps (clean is eps 0); transfer attacks are not the evaluated
    # model's own, so they are left out
    clean = acc.get("clean", math.nan)
    for series in dict.fromkeys(c.series for c in own):
        lowest, at = clean, 0.0
        for c in sorted((c for c in own if c.series == series), key=lambda c: c.strength):
            if acc[c.label] > lowest + tol:
                where = f"at eps={format_eps(at)}" if at else "clean"
                flags[c.label].append(
                    f"eps-monotone: ACC {acc[c.label]:.3f} > {lowest:.3f} {where}"
                )
            if not acc[c.label] >= lowest:
                lowest, at = acc[c.label], c.strength
    return flags


def _device(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), torch.empty(0))
    return tensor.device


def _batches(loader: DataLoader, max_batches: int | None) -> int | None:
    try:
        count = len(loader)
    except TypeError:
        return max_batches
    return min(count, max_batches) if max_batches else count


def robustness_report(
    model: nn.Module,
    loaders: Mapping[str, DataLoader],
    cfg: Mapping,
    output_dir: Path,
    source: nn.Module | None = None,
    progress: Path | None = None,
) -> list[dict]:
    """Evaluate ``model`` under every condition of ``cfg`` (a ``conf/robustness`` node).

    model: a detector (``[B,3,H,W]`` in [0,1] -> ``[B]`` logits) on its device; it runs in eval
    mode and gets its modules' modes back. loaders: one test loader per generator, batches
    ``(images, labels)`` with fake = 1. source: the detector transfer attacks are crafted on
    (``cfg.source_ckpt_path`` loaded by the caller, :func:`pixelproof.eval.evaluate`), on the
    same device; none: no transfer rows. Random starts and noise come from ``cfg.seed`` (the
    global RNG is left as it was). progress: a file that keeps the scores after each generator,
    so that an interrupted call, made again, resumes (:mod:`~pixelproof.evaluation.score_progress`;
    name it after the model and the images); removed once the report is written.

    Returns one row per condition (clean first): ``condition, kind, name, strength, acc, ap``
    (means over generators), ``acc_drop`` (clean ACC minus this ACC), ``flags`` (the masking
    checks' findings, ``"; "``-joined, per-generator ones prefixed with the generator) and
    ``<generator>/acc``, ``<generator>/ap``. The CSV has the same numbers in long format
    (``generator`` = ``mean`` for the means).
    """
    if not loaders:
        raise ValueError("robustness_report needs at least one test loader (one per generator)")
    if cfg.get("source_ckpt_path") and source is None:
        raise ValueError(
            "robustness.source_ckpt_path is set but no source detector was passed: load it "
            "with pixelproof.models.loading.load_detector (pixelproof.eval does)"
        )
    settings = RobustnessSettings.from_node(cfg)
    conditions = robustness_conditions(cfg, source)
    checks = masking_checks(cfg.get("masking_checks"))
    scores, images = score_conditions(
        model, loaders, conditions, settings.seed, settings.max_batches, progress
    )
    rows, long_rows = tabulate(conditions, scores, images)
    findings = {} if checks is None else masking_findings(conditions, rows, checks, list(loaders))
    attach_flags(rows, long_rows, findings, list(loaders))
    transfer = None
    if source is not None:
        transfer = cfg.get("source_ckpt_path") or "a detector passed to robustness_report"
    write_report(rows, long_rows, conditions, checks, Path(output_dir), transfer)
    if progress is not None:
        Path(progress).unlink(missing_ok=True)  # the report holds it all now
    return rows


def score_conditions(
    model: nn.Module,
    loaders: Mapping[str, DataLoader],
    conditions: Sequence[Condition],
    seed: int = 0,
    max_batches: int | None = None,
    progress: Path | None = None,
) -> tuple[Scores, dict[str, int]]:
    """p(fake) under every condition: ``{condition label: {generator: (probs, labels)}}`` (what
    :func:`generator_table` tabulates) and the number of images scored per generator. The
    model runs in eval mode; random starts and noise are seeded, the global RNG is restored.
    progress: where the scores are kept after each generator, and taken from on a second call
    (:class:`~pixelproof.evaluation.score_progress.ScoreProgress`)."""
    device = _device(model)
    plan = {
        "conditions": [c.label for c in conditions],
        "generators": list(loaders),
        "seed": seed,
        "max_batches": max_batches,
    }
    kept = ScoreProgress.open(progress, plan)
    sizes = [_batches(loader, max_batches) for loader in loaders.values()]
    total = sum(sizes) * len(conditions) if all(s is not None for s in sizes) else None
    done = sum(s or 0 for g, s in zip(loaders, sizes) if g in kept.finished) * len(conditions)
    cuda = [device.index or 0] if device.type == "cuda" else []
    noise = torch.Generator().manual_seed(seed)
    with (
        torch.random.fork_rng(devices=cuda),
        eval_mode(model),
        tqdm(total=total, initial=done, desc="robustness", unit="batch") as bar,
    ):
        torch.manual_seed(seed)  # torchattacks' random starts use the global generator
        kept.restore_random_state(noise, cuda)
        for generator, loader in loaders.items():
            if generator in kept.finished:
                continue
            probs = {c.label: [] for c in conditions}
            labels = []
            for index, batch in enumerate(loader):
                if max_batches and index >= max_batches:
                    break
                x, y = batch[0].to(device), batch[1].to(device)
                labels.append(y.cpu())
                for condition in conditions:
                    bar.set_postfix_str(f"{generator}: {condition.label}", refresh=False)
                    altered = condition.apply(model, x, y, noise)
                    with torch.no_grad():
                        scores = model(altered).reshape(-1).sigmoid()
                    probs[condition.label].append(scores.float().cpu())
                    bar.update()
            probs = {label: torch.cat(p) for label, p in probs.items()}
            kept.finish(generator, probs, torch.cat(labels), noise, cuda)
    by_condition = {
        c.label: {g: (kept.probs[g][c.label], kept.labels[g]) for g in loaders} for c in conditions
    }
    return by_condition, {g: len(kept.labels[g]) for g in loaders}


def tabulate(
    conditions: Sequence[Condition], scores: Scores, images: Mapping[str, int]
) -> tuple[list[dict], list[dict]]:
    """One row per condition (means over generators, ``<generator>/acc``, ``<generator>/ap``,
    ``acc_drop``) and the same numbers in long format (one row per condition and generator, the
    mean last, with the number of images), both without flags yet."""
    rows, long_rows = [], []
    for condition in conditions:
        head = {
            "condition": condition.label,
            "kind": condition.kind,
            "name": condition.name,
            "strength": condition.strength,
        }
        row = dict(head)
        per_generator = scores[condition.label]
        table = generator_table(per_generator)  # ACC@0.5: the boundary the attacks aim at
        for r in table[: len(per_generator)]:
            row.update({f"{r['generator']}/{k}": r[k] for k in ("acc", "ap")})
            long_rows.append(_long_row(head, r["generator"], r, images[r["generator"]]))
        mean = table[-1]  # the mean row, or the only test set's own
        row.update(acc=mean["acc"], ap=mean["ap"])
        long_rows.append(_long_row(head, MEAN, mean, sum(images.values())))
        rows.append(row)
    for row in rows:
        row["acc_drop"] = rows[0]["acc"] - row["acc"]
    return rows, long_rows


def _long_row(head: Mapping, generator: str, numbers: Mapping, images: int) -> dict:
    row = {**head, "generator": generator, "acc": numbers["acc"], "ap": numbers["ap"]}
    return {**row, "images": images}


def masking_findings(
    conditions: Sequence[Condition],
    rows: Sequence[Mapping],
    checks: MaskingChecks,
    generators: Sequence[str],
) -> dict[tuple[str, str], list[str]]:
    """The masking checks on the mean and on every generator: ``{(condition label, generator
    or "mean"): [flag, ...]}``."""
    findings = {}
    for generator in [MEAN, *generators]:
        key = "acc" if generator == MEAN else f"{generator}/acc"
        accs = {r["condition"]: r[key] for r in rows}
        for label, flags in masking_flags(conditions, accs, checks).items():
            findings[label, generator] = flags
    return findings


def attach_flags(
    rows: Sequence[dict],
    long_rows: Sequence[dict],
    findings: Mapping[tuple[str, str], list[str]],
    generators: Sequence[str],
) -> None:
    """Fill every row's ``flags``: a long row its own generator's; a row the mean's, then (with
    more than one generator) each generator's, prefixed with its name."""
    for row in long_rows:
        row["flags"] = "; ".join(findings.get((row["condition"], row["generator"]), []))
    for row in rows:
        mean_flags = findings.get((row["condition"], MEAN), [])
        own = [f"{g}: {f}" for g in generators for f in findings.get((row["condition"], g), [])]
        row["flags"] = "; ".join(mean_flags + (own if len(generators) > 1 else []))


def write_report(
    rows: list[dict],
    long_rows: list[dict],
    conditions: Sequence[Condition],
    checks: MaskingChecks | None,
    output_dir: Path,
    transfer_source: str | None = None,
) -> None:
    """``robustness.csv``, ``robustness.md`` and ``robustness.png`` in ``output_dir``, each
    written whole or not at all; warns when a masking check raised a flag."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_csv(long_rows, output_dir / "robustness.csv")
    markdown = output_dir / "robustness.md"
    write_atomic(markdown, report_markdown(rows, checks, transfer_source))
    grid = [c.strength for c in conditions if c.kind == "attack"] or [0.0]
    plot_accuracy_vs_eps(rows, output_dir / "robustness.png", max_eps=max(grid))
    flagged = [r for r in rows if r["flags"]]
    if flagged:
        log.warning(
            "Masking checks raised flags on %d of %d rows (see %s): %s",
            len(flagged), len(rows), markdown, flagged[0]["flags"],
        )  # fmt: skip
    log.info("Robustness table: %s", markdown)


def write_csv(rows: list[dict], path: Path) -> None:
    with atomic_open(path, "w", newline="") as file:  # whole or not at all
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def report_markdown(
    rows: list[dict], checks: MaskingChecks | None, transfer_source: str | None = None
) -> str:
    """``robustness.md``: the table, the masking checks' section and, with transfer attacks, the
    detector they were crafted on."""
    text = markdown_table(rows, checks is not None) + "\n\n" + masking_section(rows, checks)
    if transfer_source is not None:
        text += (
            f"\n\nTransfer attacks crafted on {transfer_source}, scored on the evaluated detector."
        )
    return text + "\n"


CHECKS = ("large-eps", "more-effort", "black-box", "eps-monotone")


def _codes(flags: str) -> str:
    """A row's flags by check: ``"black-box: ...; a: eps-monotone: ...; b: eps-monotone: ..."``
    -> ``"black-box, eps-monotone (a, b)"`` (generators named only where the mean passed)."""
    mean, generators = {}, {}
    for flag in filter(None, flags.split("; ")):
        parts = flag.split(": ")
        if parts[0] in CHECKS:
            mean[parts[0]] = True
        else:
            generators.setdefault(parts[1], []).append(parts[0])
    codes = list(mean)
    codes += [f"{c} ({', '.join(g)})" for c, g in generators.items() if c not in mean]
    return ", ".join(codes)


def markdown_table(rows: list[dict], flags: bool = False) -> str:
    """Mean ACC / AP over generators per condition, and the accuracy lost to it; with the
    masking checks on, a ``flags`` column names the checks a row failed."""
    header = "| condition | kind | ACC | AP | ACC drop |" + (" flags |" if flags else "")
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for row in rows:
        line = (
            f"| {row['condition']} | {row['kind']} | {row['acc']:.3f} | {row['ap']:.3f} "
            f"| {row['acc_drop']:+.3f} |"
        )
        lines.append(line + (f" {_codes(row['flags'])} |" if flags else ""))
    return "\n".join(lines)


def masking_section(rows: list[dict], checks: MaskingChecks | None) -> str:
    """What the masking checks found, one line per flag (or that they passed, or were off)."""
    if checks is None:
        return "Masking checks: off (robustness.masking_checks)."
    lines = [
        "## Masking checks",
        "",
        f"Carlini et al. 2019: PGD at eps={format_eps(checks.large_eps)} leaves ACC <= "
        f"{checks.large_eps_max_acc:g} (large-eps); more steps / restarts / queries never "
        "weaken an attack (more-effort); black-box and transfer attacks never beat the best "
        "white-box one (black-box); ACC never rises with eps (eps-monotone). Tolerance "
        f"{checks.tolerance:g} ACC, on the mean and on each generator.",
        "",
    ]
    flagged = [(r["condition"], f) for r in rows for f in r["flags"].split("; ") if f]
    if not flagged:
        lines.append("No flag raised.")
    else:
        lines.append(f"**{len(flagged)} flag(s) raised** (possible gradient masking):")
        lines.append("")
        lines += [f"- `{condition}`: {flag}" for condition, flag in flagged]
    return "\n".join(lines)


def plot_accuracy_vs_eps(rows: list[dict], path: Path, max_eps: float | None = None) -> None:
    """Mean ACC against eps (in 1/255), one line per attack (white-box, black-box, transfer and
    the checks' extra attacks up to ``max_eps``), starting from the clean ACC; points whose row
    carries a masking flag are ringed in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = rows[0]["acc"]
    attacks = [r for r in rows if r["kind"] in ("attack", "transfer", "check")]
    if max_eps is not None:
        attacks = [r for r in attacks if r["strength"] <= max_eps + 1e-9]
    figure, axes = plt.subplots(figsize=(6, 4))
    series = dict.fromkeys(r["condition"].split(" eps=")[0] for r in attacks)
    for label in series:
        points = [r for r in attacks if r["condition"].split(" eps=")[0] == label]
        eps, acc = zip(*sorted([(0.0, clean), *((r["strength"], r["acc"]) for r in points)]))
        style = "--" if label.startswith("transfer ") else "-"
        axes.plot([e * 255 for e in eps], acc, style, marker="o", markersize=4, label=label)
        bad = [(r["strength"] * 255, r["acc"]) for r in points if r["flags"]]
        if bad:
            axes.scatter(*zip(*bad), s=120, facecolors="none", edgecolors="red", linewidths=1.5)
    axes.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    axes.set_xlabel("eps (x 1/255; the L2 norm for pgd_l2)")
    axes.set_ylabel("ACC@0.5, mean over generators")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7)
    flagged = sum(bool(r["flags"]) for r in rows)
    note = f"; {flagged} masking flag(s), ringed" if flagged else ""
    axes.set_title(f"Accuracy under attack (clean ACC {clean:.3f}{note})", fontsize=9)
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, dpi=120, format="png")
    plt.close(figure)
