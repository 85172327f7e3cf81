"""The README's headline table ("What the default detector achieves") agrees with the results
file it comes from: no training, both files parsed as they are.

The section names its augmentation (`` `data/augment=<name>` ``; results files collected
before the ``recipe`` group was split call the same choice ``recipe``), its callbacks choice where
it is not the plain one (`` `callbacks=<name>` ``), its seed ("seed <n>")
and its study (the first link to ``experiments/<study>/README.md``);
``experiments/<study>/results.csv`` (written by ``experiments/collect.py``) is the source. For
each generator row: test AP, ACC@t and fakes caught at t are the run on every family
(``held_out`` null); held-out AP is the run with the generator's family held out ("–" when there
is none); the mean row is the test means and the journey's mean / worst AP; "(t = ...)" is the
calibrated threshold. The per-generator journey cells are checked only if the results file has
per-generator journey columns (``collect.py`` writes the journey's means, not its per-generator
numbers).
"""

import csv
import re
from pathlib import Path

import pytest

from pixelproof.data.embedded import held_out_generators
from pixelproof.data.layouts import UNSEEN_SOURCES

ROOT = Path(__file__).resolve().parents[2]
SECTION = "**What the default detector achieves.**"
TABLE_AFTER = "The study's run of this recipe on every family"
COLUMNS = {  # README header -> the metric (per generator: test/<g>/<metric>)
    "test AP": "ap",
    "ACC@t": "acc_calibrated",
    "fakes caught at t": "fake_acc_calibrated",
}
JOURNEY, HELD_OUT, FROM = "journey mean / worst AP", "held-out AP", "fakes from"


def percent(value: float) -> str:
    """As ``experiments/collect.py`` writes a share: % with one decimal."""
    return f"{100 * value:.1f}"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no {SECTION!r} section: update this check"
    start = text.index(SECTION)
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else None]


def readme_table(section: str) -> tuple[list[str], list[list[str]]]:
    assert TABLE_AFTER in section, f"README.md: no {TABLE_AFTER!r} before the table"
    lines = section[section.index(TABLE_AFTER) :].splitlines()
    rows = []
    for line in lines[next(i for i, line in enumerate(lines) if line.startswith("|")) :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, body = rows[0], [r for r in rows[2:]]  # rows[1] is the --- line
    return header, body


def plain(cell: str) -> str:
    return cell.replace("**", "").replace("`", "").strip()


def results_rows(section: str) -> tuple[Path, list[dict]]:
    study = re.search(r"\]\((experiments/[\w-]+)/README\.md\)", section)
    assert study, "README.md's section links no experiments/<study>/README.md"
    path = ROOT / study.group(1) / "results.csv"
    assert path.is_file(), f"{path} is missing: the README table has no results file"
    with open(path, newline="") as handle:
        return path, list(csv.DictReader(handle))


def is_null(value: str | None) -> bool:
    return value in (None, "", "null", "None")


def pick(
    rows: list[dict], augment: str, callbacks: str | None, seed: str | None, held_out: bool
) -> list[dict]:
    chosen = []
    for row in rows:
        choice = row.get("data/augment") or row.get("recipe") or augment  # recipe: its old name
        if choice != augment or is_null(row.get("held_out")) == held_out:
            continue
        if (row.get("callbacks") or None) != callbacks:  # empty: the run's default callbacks
            continue
        if seed is not None and not is_null(row.get("seed")) and row["seed"] != seed:
            continue
        chosen.append(row)
    return chosen


def test_readme_headline_table_matches_the_results_file():
    section = readme_section()
    augment = re.search(r"`data/augment=([\w-]+)`", section)
    assert augment, "README.md's section names no `data/augment=<name>`"
    augment = augment.group(1)
    callbacks = re.search(r"`callbacks=([\w-]+)`", section)
    callbacks = callbacks.group(1) if callbacks else None
    seed = re.search(r"\bseed (\d+)", section)
    seed = seed.group(1) if seed else None
    path, rows = results_rows(section)
    full = pick(rows, augment, callbacks, seed, held_out=False)
    assert len(full) == 1, (
        f"{path}: {len(full)} runs of data/augment={augment} on every family (seed {seed}); "
        "the README table needs exactly one"
    )
    run = full[0]
    held_runs = {}  # generator -> the run that held its family out
    for row in pick(rows, augment, callbacks, seed, held_out=True):
        for generator in held_out_generators(row["held_out"]):
            held_runs[generator] = row

    header, body = readme_table(section)
    missing = [c for c in [FROM, *COLUMNS, JOURNEY, HELD_OUT] if c not in header]
    assert not missing, f"README table lacks columns {missing}: update this check"
    col = {name: header.index(name) for name in header}

    generators = sorted(
        k.split("/")[1]
        for k in run
        if k.startswith("test/") and k.endswith("/ap") and k.count("/") == 2
    )
    generators = [g for g in generators if g != UNSEEN_SOURCES and not is_null(run[f"test/{g}/ap"])]
    shown = [plain(r[col[FROM]]) for r in body if plain(r[col[FROM]]) != "mean"]
    problems = []
    if sorted(shown) != generators:
        problems.append(f"generators: README {sorted(shown)}, {path.name} {generators}")

    def check(where: str, cell: str, value: str | None) -> None:
        expected = "–" if is_null(value) else percent(float(value))
        if plain(cell) != expected:
            problems.append(f"{where}: README {plain(cell)!r}, {path.name} {expected!r}")

    for row in body:
        name = plain(row[col[FROM]])
        if name == "mean":
            for column, metric in COLUMNS.items():
                check(f"mean {column}", row[col[column]], run.get(f"test/{metric}"))
            mean_worst = [c.strip() for c in plain(row[col[JOURNEY]]).split("/")]
            check("mean journey mean AP", mean_worst[0], run.get("journey/mean_ap"))
            check("mean journey worst AP", mean_worst[-1], run.get("journey/worst_ap"))
            continue
        if name not in generators:
            continue  # reported above
        for column, metric in COLUMNS.items():
            check(f"{name} {column}", row[col[column]], run.get(f"test/{name}/{metric}"))
        if f"journey/{name}/mean_ap" in run:  # only if collect.py writes them
            mean_worst = [c.strip() for c in plain(row[col[JOURNEY]]).split("/")]
            check(f"{name} journey mean AP", mean_worst[0], run[f"journey/{name}/mean_ap"])
            check(f"{name} journey worst AP", mean_worst[-1], run[f"journey/{name}/worst_ap"])
        held = held_runs.get(name)
        check(f"{name} held-out AP", row[col[HELD_OUT]], held and held.get(f"test/{name}/ap"))

    threshold = re.search(r"\(t = ([0-9.]+)\)", section)
    assert threshold, "README.md's section states no calibrated threshold '(t = ...)'"
    if f"{float(run['test/threshold']):.3f}" != threshold.group(1):
        problems.append(f"t: README {threshold.group(1)}, {path.name} {run['test/threshold']}")
    # the reals' sentence, where the README states it
    sentences = [
        (r"Reals: ([0-9.]+) % of the test split's real crops", "test/real_acc_calibrated"),
        (
            r"([0-9.]+) % of the crops of photographs from",
            f"test/{UNSEEN_SOURCES}/real_acc_calibrated",
        ),
        (r"at most ([0-9.]+) % of reals called fake in any journey", "journey/max_fpr"),
    ]
    for pattern, metric in sentences:
        found = re.search(pattern, section.replace("**", ""))
        if found and metric in run:
            check(metric, found.group(1), run[metric])
    assert not problems, f"README.md disagrees with {path}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("column", [*COLUMNS, HELD_OUT])
def test_the_check_fails_when_a_readme_number_changes(monkeypatch, column):
    """The check reads what README.md says: one changed cell (the first generator row's in
    ``column``, a number or "–") fails it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    header, body = readme_table(readme_section())
    row = body[0]
    old_line = "| " + " | ".join(row) + " |"
    assert old_line in text, "the README table is not written as '| a | b |': update this check"
    cell = row[header.index(column)]
    row[header.index(column)] = "50.0" if plain(cell) in ("–", "") else "–"
    changed = text.replace(old_line, "| " + " | ".join(row) + " |", 1)
    real_read = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: changed if self == ROOT / "README.md" else real_read(self, *a, **k),
    )
    with pytest.raises(AssertionError, match=f"disagrees(.|\\n)*{re.escape(column)}"):
        test_readme_headline_table_matches_the_results_file()
