"""SynArtifact-style annotations: (image, prompt, target explanation) for fine-tuning a VLM.

One JSON file per image, named after it (``<root>/annotations/17.json`` for
``<root>/images/17.png``; as in the Team 57 and Team 91 reports)::

    {"Artifacts annotation": [
        {"rect_start": [87, 272], "rect_end": [215, 431],          # optional, pixels
         "artifacts_caption": "Wizard's fingers are distorted.",
         "artifacts_class": "Anatomically impossible joint configurations"}   # or "43"
     ],
     "Other artifacts caption": "None"}                            # optional

``artifacts_class`` is a taxonomy name or its 1-based number in the taxonomy's official order
(Team 57's files use numbers: see ``pixelproof.explainer.taxonomy``). A name outside the taxonomy
(SynArtifact's own classes, e.g. "Distorted and Deformated Components") is kept as written with
``unknown_class=keep`` (the model learns to explain the names it is given) or refused with
``unknown_class=error``.

The prompt is the one ``explain`` asks (the artifacts by name with their region in words, from the
rectangles); the target is the JSON object ``{class: caption}`` it asks for, so a fine-tuned
adapter answers in the format the parser reads. A malformed file is an ``AnnotationError`` that
names the file and what was wrong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from pixelproof.data.decoding import BadImageError, image_files, load_rgb
from pixelproof.explainer.localisation import describe_region
from pixelproof.explainer.prompt import DEFAULT_INSTRUCTION, build_prompt, format_answer
from pixelproof.explainer.taxonomy import Taxonomy

log = logging.getLogger("pixelproof.data")

ENTRIES = "Artifacts annotation"
OTHER = "Other artifacts caption"
FORMAT = (
    f'{{"{ENTRIES}": [{{"artifacts_caption": "...", "artifacts_class": "<name or 1-based '
    f'number>", "rect_start": [x, y], "rect_end": [x, y]}}], "{OTHER}": "..."}}'
)


class AnnotationError(ValueError):
    """An annotation file that does not follow the SynArtifact format."""


@dataclass(frozen=True)
class ArtifactNote:
    name: str
    caption: str
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class Annotation:
    artifacts: tuple[ArtifactNote, ...]
    other: str | None


def _fail(path: Path, what: str) -> AnnotationError:
    return AnnotationError(f"{path}: {what}; expected {FORMAT}")


def _point(path: Path, position: int, key: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(path, f"entry {position}: {key} must be [x, y] numbers, got {value!r}")
    return float(value[0]), float(value[1])


def load_annotation(
    path: str | Path, taxonomy: Taxonomy, unknown_class: Literal["keep", "error"] = "keep"
) -> Annotation:
    """Read and check one annotation file (see the module docstring)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(path, f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise _fail(path, f"the top level is a {type(data).__name__}, not an object")
    entries = data.get(ENTRIES)
    if not isinstance(entries, list):
        raise _fail(path, f'no "{ENTRIES}" list')
    notes: list[ArtifactNote] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _fail(path, f"entry {position} is a {type(entry).__name__}, not an object")
        caption, label = entry.get("artifacts_caption"), entry.get("artifacts_class")
        if not isinstance(caption, str) or not caption.strip():
            raise _fail(path, f'entry {position} has no "artifacts_caption" text')
        if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
            raise _fail(path, f'entry {position} has no "artifacts_class"')
        name = taxonomy.resolve(label)
        if name is None:
            if str(label).strip().isdigit():
                raise _fail(
                    path,
                    f"entry {position}: class number {label} is outside 1..{len(taxonomy.names)}",
                )
            if unknown_class == "error":
                raise AnnotationError(
                    f"{path}: entry {position}: class {label!r} is not in the taxonomy; use a "
                    "taxonomy name or number, or data.unknown_class=keep to keep it as written"
                )
            name = " ".join(str(label).split())
        box = None
        if "rect_start" in entry or "rect_end" in entry:
            x0, y0 = _point(path, position, "rect_start", entry.get("rect_start"))
            x1, y1 = _point(path, position, "rect_end", entry.get("rect_end"))
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        notes.append(ArtifactNote(name, " ".join(caption.split()), box))
    other = data.get(OTHER)
    if other is not None and not isinstance(other, str):
        raise _fail(path, f'"{OTHER}" must be text, got {type(other).__name__}')
    other = other.strip() if other and other.strip().lower() not in ("none", "n/a", "") else None
    return Annotation(tuple(notes), other)


def training_pair(
    annotation: Annotation, width: int, height: int, instruction: str = DEFAULT_INSTRUCTION
) -> tuple[str, str]:
    """(prompt, target) for one image: the artifacts in first-mention order, captions of a
    class mentioned twice joined."""
    regions: dict[str, str | None] = {}
    captions: dict[str, list[str]] = {}
    for note in annotation.artifacts:
        region = describe_region(note.box, width, height) if note.box else None
        regions.setdefault(note.name, region)
        captions.setdefault(note.name, []).append(note.caption)
    prompt = build_prompt(list(regions.items()), instruction)
    return prompt, format_answer({n: " ".join(c) for n, c in captions.items()})


class ExplainBatch(NamedTuple):
    """Raw samples; the model's processor turns them into tensors (it owns the tokenizer)."""

    images: list[Image.Image]
    prompts: list[str]
    answers: list[str]


def collate(samples: Sequence[tuple[Image.Image, str, str]]) -> ExplainBatch:
    images, prompts, answers = zip(*samples)
    return ExplainBatch(list(images), list(prompts), list(answers))


class SynArtifactDataset(Dataset):
    """``(image, prompt, target)`` per annotated image; images resized to ``image_size``
    (Team 91 trained on SynArtifact at 32x32) unless it is ``None``."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Annotation]],
        image_size: int | None = 32,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> None:
        self.pairs, self.image_size, self.instruction = list(pairs), image_size, instruction

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Image.Image, str, str]:
        image_path, annotation = self.pairs[index]
        image = load_rgb(image_path)
        prompt, target = training_pair(annotation, image.width, image.height, self.instruction)
        if self.image_size:
            size = (self.image_size, self.image_size)
            image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
        return image, prompt, target


def find_pairs(
    root: Path,
    images_subdir: str | None,
    annotations_subdir: str | None,
    taxonomy: Taxonomy,
    unknown_class: Literal["keep", "error"] = "keep",
) -> list[tuple[Path, Annotation]]:
    """Every annotation file with its image (same stem); annotations without an image and
    images that cannot be read are skipped with one warning each kind."""
    image_dir = root / images_subdir if images_subdir else root
    note_dir = root / annotations_subdir if annotations_subdir else root
    for folder, key in ((image_dir, "data.images_subdir"), (note_dir, "data.annotations_subdir")):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: no such directory; data.root must hold {images_subdir or '.'}/ and "
                f"{annotations_subdir or '.'}/ (set {key}, null for data.root itself)"
            )
    images = {p.stem: p for p in image_files(image_dir)[0]}
    pairs, orphans, unreadable, empty = [], [], [], []
    for note_path in sorted(note_dir.glob("*.json")):
        annotation = load_annotation(note_path, taxonomy, unknown_class)
        image_path = images.get(note_path.stem)
        if image_path is None:
            orphans.append(note_path.name)
        elif not annotation.artifacts:
            empty.append(note_path.name)
        else:
            try:
                load_rgb(image_path)
            except BadImageError as err:
                unreadable.append(f"{image_path.name}: {err.reason}")
                continue
            pairs.append((image_path, annotation))
    for what, items in (
        (f"annotation files with no image in {image_dir}", orphans),
        ("annotation files that list no artifact", empty),
        ("unreadable images", unreadable),
    ):
        if items:
            log.warning("Skipped %d %s: %s", len(items), what, "; ".join(items[:5]))
    if not pairs:
        raise FileNotFoundError(
            f"no annotated images under {root}: need <name>.json in {note_dir} next to "
            f"<name>.png (or .jpg, ...) in {image_dir}"
        )
    return pairs


class SynArtifactDataModule(L.LightningDataModule):
    """Seeded train / val / test split of the annotated images of ``root``.

    Args:
        root: folder with ``images_subdir`` and ``annotations_subdir`` (null: root itself).
        taxonomy: a ``conf/taxonomy`` config (``classes``; resolves numeric classes).
        val_fraction / test_fraction: shares of the images held out (at least one image each
            when the fraction is positive); val must be positive (val/loss picks the best
            adapter); test 0 tests on the validation images.
        image_size: side images are resized to (null: as stored). unknown_class: keep | error.
    """

    def __init__(
        self,
        root: str,
        taxonomy: Mapping[str, Any],
        images_subdir: str | None = "images",
        annotations_subdir: str | None = "annotations",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        image_size: int | None = 32,
        unknown_class: Literal["keep", "error"] = "keep",
        instruction: str | None = None,
        batch_size: int = 4,
        eval_batch_size: int = 4,
        num_workers: int = 0,
        augment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if augment:  # the detector's training augmentation (data/augment=journey by default)
            log.info("data.augment (the detector's recipe) does not apply to explainer data")
        if unknown_class not in ("keep", "error"):
            raise ValueError(f"data.unknown_class={unknown_class!r}: choose keep or error")
        if not (
            0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ValueError(
                f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction}: val in "
                "(0, 1) (val/loss picks the best adapter), test in [0, 1), together below 1"
            )
        self.root = Path(root).expanduser()
        self.taxonomy = Taxonomy.from_config(**dict(taxonomy))
        self.subdirs = (images_subdir, annotations_subdir)
        self.fractions, self.split_seed = (val_fraction, test_fraction), split_seed
        self.image_size, self.unknown_class = image_size, unknown_class
        self.instruction = instruction or DEFAULT_INSTRUCTION
        self.batch_size, self.eval_batch_size, self.num_workers = (
            batch_size,
            eval_batch_size,
            num_workers,
        )
        self.splits: dict[str, SynArtifactDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data.root={self.root}: no such directory; pass a folder with images/ and "
                "annotations/ (SynArtifact layout)"
            )
        pairs = find_pairs(self.root, *self.subdirs, self.taxonomy, self.unknown_class)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(self.split_seed))
        counts = [max(1, round(f * len(pairs))) if f > 0 else 0 for f in self.fractions]
        if sum(counts) >= len(pairs):
            raise ValueError(
                f"{len(pairs)} annotated images under {self.root} are too few for "
                f"val_fraction={self.fractions[0]} and test_fraction={self.fractions[1]}"
            )
        n_val, n_test = counts
        chosen = [pairs[i] for i in order.tolist()]
        parts = {
            "val": chosen[:n_val],
            "test": chosen[n_val : n_val + n_test],
            "train": chosen[n_val + n_test :],
        }
        if not parts["test"]:
            parts["test"] = parts["val"]
        self.splits = {
            k: SynArtifactDataset(v, self.image_size, self.instruction) for k, v in parts.items()
        }
        log.info(
            "SynArtifact: %s",
            ", ".join(f"{k} {len(v)}" for k, v in self.splits.items()),
        )

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, False)
