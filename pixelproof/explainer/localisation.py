"""Where an artifact shows: a patch heatmap turned into a coarse box and a phrase.

The heatmap comes from CLIP's patch tokens (see ``artifact_scorer``): each patch's similarity to the
artifact's text embedding. The "future scope" of the Team 57 report ("Image Classification and
Artifact Detection") proposes exactly this for 32x32 images (patch size 16 gives 4 patches). The box
bounds the connected blob of patches around the peak whose similarity is at least ``keep`` of the
way from the map's minimum to its maximum; the phrase names the cell of a 3x3 grid that holds the
box centre ("upper left", "centre", ...) or "across the whole image" when the box covers most of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A box covering at least this fraction of the image is "across the whole image".
WHOLE_IMAGE_FRACTION = 0.6


@dataclass(frozen=True)
class Location:
    """``box``: ``[x0, y0, x1, y1]`` in pixels of the original image (x1, y1 exclusive);
    ``region``: the box in words; ``heatmap``: the patch grid, min-max scaled to [0, 1]."""

    box: tuple[int, int, int, int]
    region: str
    heatmap: list[list[float]]

    def to_dict(self) -> dict:
        return {"box": list(self.box), "region": self.region, "heatmap": self.heatmap}


def describe_region(box: tuple[float, float, float, float], width: int, height: int) -> str:
    """A box in words: the 3x3 cell of its centre, or 'across the whole image'."""
    x0, y0, x1, y1 = box
    area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    if area >= WHOLE_IMAGE_FRACTION * width * height:
        return "across the whole image"
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    row = ("upper", "middle", "lower")[min(int(cy * 3), 2)]
    col = ("left", "centre", "right")[min(int(cx * 3), 2)]
    if row == "middle" and col == "centre":
        return "in the centre"
    if row == "middle":
        return f"on the {col}"
    if col == "centre":
        return f"in the {row} centre"
    return f"in the {row} {col}"


def _peak_component(mask: torch.Tensor, peak: tuple[int, int]) -> torch.Tensor:
    """``[k, 2]`` (row, col) of the 4-connected cells of ``mask`` that hold the peak: one blob,
    so two distant hot spots do not make a box over the whole image."""
    rows, cols = mask.shape
    seen, todo = {peak}, [peak]
    while todo:
        r, c = todo.pop()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < rows and 0 <= nc < cols and mask[nr, nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                todo.append((nr, nc))
    return torch.tensor(sorted(seen))


def locate(similarity: torch.Tensor, width: int, height: int, keep: float = 0.5) -> Location:
    """``similarity``: ``[rows, cols]`` patch/text similarities of one image and one artifact."""
    rows, cols = similarity.shape
    low, high = similarity.min(), similarity.max()
    scaled = (similarity - low) / (high - low) if high > low else torch.ones_like(similarity)
    hot = _peak_component(scaled >= keep, divmod(int(scaled.argmax()), cols))
    r0, c0 = hot.min(0).values.tolist()
    r1, c1 = (hot.max(0).values + 1).tolist()
    box = (
        round(c0 * width / cols),
        round(r0 * height / rows),
        round(c1 * width / cols),
        round(r1 * height / rows),
    )
    heatmap = [[round(float(v), 3) for v in row] for row in scaled]
    return Location(box, describe_region(box, width, height), heatmap)
