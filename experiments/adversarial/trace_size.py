"""How big is each generator's trace, against an attack budget? The mean absolute high-pass
residual (image minus its 3x3 box blur) of each generator's test fakes and of the test reals, in
grey levels of 255, on the embedded test split:

    python experiments/adversarial/trace_size.py [--root data/embedded]

An L-inf perturbation of eps = k/255 may move every pixel by k levels, so it can add or remove
about k levels of high-pass residual: a trace that differs from the reals' by less than that is
within the attacker's reach.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


def high_pass_level(folder: Path) -> float:
    """Mean |x - box3x3(x)| over the PNGs of ``folder``, in levels of 255."""
    levels = []
    for path in sorted(folder.glob("*.png")):
        x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        levels.append(np.abs(x - ndimage.uniform_filter(x, size=(3, 3, 1))).mean())
    if not levels:
        raise SystemExit(f"no PNG files in {folder}: build the embedded data first (make train)")
    return float(np.mean(levels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/embedded"))
    args = parser.parse_args()
    tests = sorted((args.root / "test_per_generator").iterdir())
    real = high_pass_level(tests[0] / "0_real")
    print("| images | mean high-pass residual (levels) | fakes - reals |")
    print("| --- | --- | --- |")
    print(f"| real test crops | {real:.2f} | |")
    for folder in tests:
        fake = high_pass_level(folder / "1_fake")
        print(f"| {folder.name} fakes | {fake:.2f} | {fake - real:+.2f} |")


if __name__ == "__main__":
    main()
