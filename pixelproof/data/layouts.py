"""Discover labelled image files in the dataset layouts pixelproof understands.

:data:`LAYOUTS` is the registry ``data.layout`` picks from; each layout is a small object that
lists a split's files pooled (training, validation) or grouped by generator (testing), as
:class:`Sample` records (path, label, generator):

* ``cifake``: ``<root>/<split>/REAL/*`` and ``<root>/<split>/FAKE/*``; one test set;
* ``per_generator`` (CNNDetection / UFD / RINE test sets): ``<root>/<split>/<generator>/
  0_real|1_fake/*`` or ``<root>/<split>/<generator>/<class>/0_real|1_fake/*``;
* ``cifake_per_generator`` (the embedded dataset): CIFAKE splits for training, and
  ``<root>/<split>_per_generator/<generator>/0_real|1_fake`` for testing;
* ``csv``: a split is a CSV file list with a ``path,label[,generator]`` header.

Adding a layout is one class here, one entry in :data:`LAYOUTS` and one ``conf/data/`` file.

Folder layouts only read the files *directly* inside a class folder (no recursion), so a stray
sub-folder cannot silently add images to a class. Files are sorted by name so the sample order
(and therefore seeded splits and shuffles) is the same on every machine. Hidden files are
skipped; files whose extension is not in :data:`IMAGE_EXTENSIONS` are skipped too, and counted
in one INFO log line per call. Label convention, project-wide: 0 = real, 1 = fake.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pixelproof.data.decoding import IMAGE_EXTENSIONS

# the per-generator test set of reals from sources nothing trained on, against fakes of every
# generator (the embedded dataset writes it): a row of the per-generator table, not a generator
UNSEEN_SOURCES = "unseen_sources"

log = logging.getLogger("pixelproof.data")

REAL, FAKE = 0, 1
CIFAKE_CLASS_DIRS = {"real": REAL, "fake": FAKE}
GENERATOR_CLASS_DIRS = {"0_real": REAL, "1_fake": FAKE}

# How many offending names an error message quotes before summarising with a count.
_MAX_LISTED = 5


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    label: int  # 0 = real, 1 = fake
    generator: str  # group name used for per-generator test tables


class DatasetLayoutError(ValueError):
    """A dataset folder or file list is not laid out as expected."""


class _Skipped:
    """Counts non-image files met during one discovery call, so they are logged only once."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def log_once(self, where: Path) -> None:
        if not self.paths:
            return
        examples = ", ".join(p.name for p in self.paths[:_MAX_LISTED])
        log.info(
            "Ignored %d non-image file(s) under %s (e.g. %s); image extensions are %s.",
            len(self.paths),
            where,
            examples,
            ", ".join(IMAGE_EXTENSIONS),
        )


def _listing(folder: Path) -> str:
    """Visible entries of ``folder`` for error messages, e.g. ``'a/', 'b.txt'``."""
    names = sorted(
        p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith(".")
    )
    if not names:
        return "nothing"
    shown = ", ".join(repr(n) for n in names[: _MAX_LISTED * 2])
    more = len(names) - _MAX_LISTED * 2
    return shown + (f" and {more} more" if more > 0 else "")


def _subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _class_dirs(folder: Path, names: Iterable[str]) -> dict[str, Path]:
    """Map each expected class-folder name (lower case) to the sub-folder matching it.

    Matching ignores case (``REAL``, ``Real`` and ``real`` all work) but two folders that only
    differ in case are ambiguous and rejected.
    """
    wanted = set(names)
    found: dict[str, Path] = {}
    for sub in _subdirs(folder):
        key = sub.name.lower()
        if key not in wanted:
            continue
        if key in found:
            raise DatasetLayoutError(
                f"{folder} has both {found[key].name!r} and {sub.name!r}; keep only one "
                f"{key!r} class folder (names are matched case-insensitively)."
            )
        found[key] = sub
    return found


def _image_files(class_dir: Path, skipped: _Skipped) -> list[Path]:
    """Image files directly in ``class_dir``, sorted by name; raise if there are none."""
    files: list[Path] = []
    has_subdirs = False
    for p in sorted(class_dir.iterdir(), key=lambda p: p.name):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            has_subdirs = True
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            files.append(p)
        else:
            skipped.paths.append(p)
    if not files:
        hint = (
            " Sub-folders are not searched: move the images directly into it."
            if has_subdirs
            else f" Put the images there (extensions: {', '.join(IMAGE_EXTENSIONS)})."
        )
        raise DatasetLayoutError(
            f"Class folder {class_dir} contains no image files (it holds {_listing(class_dir)})."
            + hint
        )
    return files


def _require_dir(path: Path, what: str, hint: str) -> None:
    if not path.exists():
        raise DatasetLayoutError(f"{what} {path} does not exist; {hint}")
    if not path.is_dir():
        raise DatasetLayoutError(f"{what} {path} is not a folder; {hint}")


# --------------------------------------------------------------------------------------- CIFAKE


def cifake_samples(root: str | Path, split: str, generator: str = "all") -> list[Sample]:
    """Samples of one CIFAKE split: ``<root>/<split>/REAL/*`` (label 0), ``.../FAKE/*`` (label 1).

    Class folder names are matched case-insensitively. Real images come first, then fake ones,
    each sorted by file name. Every sample gets ``generator`` as its group name.
    """
    root = Path(root).expanduser()
    hint = "pass data.root=<dir> pointing at a folder laid out as <root>/<split>/REAL|FAKE."
    _require_dir(root, "Dataset root", hint)
    split_dir = root / split
    if not split_dir.is_dir():
        raise DatasetLayoutError(
            f"Split folder {split_dir} does not exist ({root} holds {_listing(root)}); "
            f"create it or choose one of the existing splits."
        )
    found = _class_dirs(split_dir, CIFAKE_CLASS_DIRS)
    skipped = _Skipped()
    samples: list[Sample] = []
    for name, label in CIFAKE_CLASS_DIRS.items():
        if name not in found:
            raise DatasetLayoutError(
                f"Class folder {split_dir / name.upper()} is missing ({split_dir} holds "
                f"{_listing(split_dir)}); CIFAKE splits need a REAL and a FAKE folder."
            )
        samples += [Sample(p, label, generator) for p in _image_files(found[name], skipped)]
    skipped.log_once(split_dir)
    return samples


# ------------------------------------------------------------------------------ per generator


def _leaf_samples(folder: Path, generator: str, skipped: _Skipped) -> list[Sample] | None:
    """Samples of a folder holding ``0_real`` and/or ``1_fake``; ``None`` if it holds neither."""
    found = _class_dirs(folder, GENERATOR_CLASS_DIRS)
    if not found:
        return None
    samples: list[Sample] = []
    for name, label in GENERATOR_CLASS_DIRS.items():
        if name in found:
            samples += [Sample(p, label, generator) for p in _image_files(found[name], skipped)]
    return samples


def _generator_samples(gen_dir: Path, skipped: _Skipped) -> list[Sample]:
    """Samples of one generator, pooling its ``<class>`` sub-folders if it has them."""
    direct = _leaf_samples(gen_dir, gen_dir.name, skipped)
    if direct is not None:
        return direct
    classes = _subdirs(gen_dir)
    if not classes:
        raise DatasetLayoutError(
            f"Generator folder {gen_dir} has no 0_real/1_fake folders (it holds "
            f"{_listing(gen_dir)}); lay it out as <generator>/0_real|1_fake or "
            f"<generator>/<class>/0_real|1_fake."
        )
    samples: list[Sample] = []
    for class_dir in classes:
        pooled = _leaf_samples(class_dir, gen_dir.name, skipped)
        if pooled is None:
            raise DatasetLayoutError(
                f"{class_dir} has no 0_real/1_fake folders (it holds {_listing(class_dir)}); "
                f"every sub-folder of generator {gen_dir.name!r} must be a <class> folder laid "
                f"out as <class>/0_real|1_fake."
            )
        samples += pooled
    return samples


def per_generator_samples(
    root: str | Path, *, require_both_classes: bool = True
) -> dict[str, list[Sample]]:
    """Samples per generator for CNNDetection / UFD / RINE style test folders.

    Accepted layouts (folder names ``0_real``/``1_fake`` matched case-insensitively):
    ``<root>/<generator>/0_real|1_fake/*`` or ``<root>/<generator>/<class>/0_real|1_fake/*``
    (the classes are pooled into their generator). If ``root`` itself holds ``0_real|1_fake``
    it is one generator, named after the folder. Generators are returned sorted by name.

    With ``require_both_classes`` (default) every generator needs real and fake images, since
    per-generator accuracy and AP are meaningless otherwise; pass ``False`` for test sets such
    as UFD's diffusion folders, where real images live in a separate folder.
    """
    root = Path(root).expanduser()
    hint = (
        "pass data.root=<dir> pointing at a folder laid out as <root>/<generator>/0_real|1_fake "
        "or <root>/<generator>/<class>/0_real|1_fake."
    )
    _require_dir(root, "Dataset root", hint)
    skipped = _Skipped()
    # abspath, not resolve(): names "." and "x/.." properly without following symlinks.
    root_name = Path(os.path.abspath(root)).name
    as_one = _leaf_samples(root, root_name, skipped)
    if as_one is not None:
        result = {root_name: as_one}
    else:
        gen_dirs = _subdirs(root)
        if not gen_dirs:
            raise DatasetLayoutError(
                f"Dataset root {root} has no generator folders (it holds {_listing(root)}); " + hint
            )
        result = {d.name: _generator_samples(d, skipped) for d in gen_dirs}
    if require_both_classes:
        for name, samples in result.items():
            labels = {s.label for s in samples}
            if labels != {REAL, FAKE}:
                missing = "0_real" if REAL not in labels else "1_fake"
                raise DatasetLayoutError(
                    f"Generator {name!r} under {root} has no {missing} images; every generator "
                    f"needs both 0_real and 1_fake folders (or pass require_both_classes=False)."
                )
    skipped.log_once(root)
    return result


# ------------------------------------------------------------------------------------------ CSV

_LABELS = {"0": REAL, "1": FAKE, "real": REAL, "fake": FAKE}
_CSV_COLUMNS = ("path", "label", "generator")


def csv_samples(csv_path: str | Path, base_dir: str | Path | None = None) -> list[Sample]:
    """Samples listed in a CSV file with a ``path,label[,generator]`` header.

    ``label`` is 0/1 or real/fake (any case). Relative paths are resolved against ``base_dir``
    if given, else against the CSV's folder. ``generator`` defaults to ``"all"`` when the column
    or a cell is empty. Rows keep the file's order; blank lines are skipped. Listed files are
    used whatever their extension (the list is explicit); unreadable ones are caught when the
    dataset scans them.
    """
    csv_path = Path(csv_path).expanduser()
    if not csv_path.is_file():
        what = "is not a file" if csv_path.exists() else "does not exist"
        raise DatasetLayoutError(
            f"CSV file list {csv_path} {what}; pass the path of a CSV with a "
            f"'path,label[,generator]' header."
        )
    base = Path(base_dir).expanduser() if base_dir is not None else csv_path.parent
    samples: list[Sample] = []
    missing: list[tuple[int, Path]] = []
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        columns = _csv_header(csv_path, next(reader, None))
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise DatasetLayoutError(
                    f"{csv_path}, line {line}: expected {len(columns)} fields "
                    f"({','.join(columns)}) but found {len(row)}; fix that row."
                )
            cells = {c: v.strip() for c, v in zip(columns, row, strict=True)}
            if not cells["path"]:
                raise DatasetLayoutError(f"{csv_path}, line {line}: the path is empty.")
            label = _LABELS.get(cells["label"].lower())
            if label is None:
                raise DatasetLayoutError(
                    f"{csv_path}, line {line}: cannot read label {cells['label']!r}; "
                    f"use 0/1 or real/fake (0 = real, 1 = fake)."
                )
            path = Path(cells["path"]).expanduser()
            if not path.is_absolute():
                path = base / path
            if not path.is_file():
                missing.append((line, path))
            samples.append(Sample(path, label, cells.get("generator") or "all"))
    if missing:
        listed = "; ".join(f"line {n}: {p}" for n, p in missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise DatasetLayoutError(
            f"{csv_path} names {len(missing)} file(s) that do not exist ({listed}{more}); "
            f"relative paths are resolved against {base.absolute()}, so fix the paths or set "
            f"data.root to the folder they are relative to."
        )
    if not samples:
        raise DatasetLayoutError(f"CSV file list {csv_path} lists no samples below its header.")
    return samples


def _csv_header(csv_path: Path, header: list[str] | None) -> list[str]:
    """Validate the header row and return the lower-cased column names."""
    expected = "the first line must be the header 'path,label' or 'path,label,generator'"
    if header is None:
        raise DatasetLayoutError(f"CSV file list {csv_path} is empty; {expected}.")
    columns = [c.strip().lower() for c in header]
    if (
        "path" not in columns
        or "label" not in columns
        or len(set(columns)) != len(columns)
        or not set(columns) <= set(_CSV_COLUMNS)
    ):
        raise DatasetLayoutError(
            f"CSV file list {csv_path} has header {','.join(header)!r}; {expected}."
        )
    return columns


# ------------------------------------------------------------------------------ the registry


class Layout:
    """How one dataset layout finds its files. ``split`` names a folder under ``root`` (a CSV
    file for the ``csv`` layout)."""

    needs_root = True

    def __init__(self, root: str | Path | None) -> None:
        if self.needs_root and root is None:
            raise DatasetLayoutError(f"data.root is required for the {self.name} layout")
        self.root = root

    @property
    def name(self) -> str:
        return next(name for name, kind in LAYOUTS.items() if kind is type(self))

    def pooled(self, split: str) -> list[Sample]:
        """A training or validation split's files, every generator pooled."""
        return [s for samples in self.grouped(split).values() for s in samples]

    def grouped(self, split: str) -> dict[str, list[Sample]]:
        """A test split's files, one group per generator (sorted by name)."""
        raise NotImplementedError


class CifakeLayout(Layout):
    def pooled(self, split: str) -> list[Sample]:
        return cifake_samples(self.root, split)

    def grouped(self, split: str) -> dict[str, list[Sample]]:
        return {"all": self.pooled(split)}


class PerGeneratorLayout(Layout):
    def grouped(self, split: str) -> dict[str, list[Sample]]:
        return per_generator_samples(Path(self.root) / split)


class CifakePerGeneratorLayout(CifakeLayout):
    def grouped(self, split: str) -> dict[str, list[Sample]]:
        return per_generator_samples(Path(self.root) / f"{split}_per_generator")


class CsvLayout(Layout):
    needs_root = False  # relative paths resolve against the CSV's folder without one

    def pooled(self, split: str) -> list[Sample]:
        return csv_samples(split, base_dir=self.root)

    def grouped(self, split: str) -> dict[str, list[Sample]]:
        groups: dict[str, list[Sample]] = {}
        for sample in self.pooled(split):
            groups.setdefault(sample.generator, []).append(sample)
        return dict(sorted(groups.items()))


LAYOUTS: dict[str, type[Layout]] = {
    "cifake": CifakeLayout,
    "per_generator": PerGeneratorLayout,
    "cifake_per_generator": CifakePerGeneratorLayout,
    "csv": CsvLayout,
}


def get_layout(name: str, root: str | Path | None) -> Layout:
    """The layout registered as ``name``, reading under ``root``."""
    if name not in LAYOUTS:
        raise ValueError(f"data.layout={name!r}: choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name](root)
