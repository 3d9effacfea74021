"""`xarch inspect TARGET --platform P --config|--files|--packages`: one image, looked inside.

The image is read with xarch.diff's readers (every blob checked against its digest as it
streams). Files are the layers applied in order, as a runtime would unpack them (OCI image
spec, layer.md: a later layer's entry replaces an earlier one; `.wh.NAME` deletes NAME and
`.wh..wh..opq` empties its folder). Packages come from the image's dpkg database
(/var/lib/dpkg/status, Debian Policy 5.6 fields), the file `dpkg -l` reads.
"""

from __future__ import annotations

import json
from typing import Any

from debian.deb822 import Deb822
from rich.console import Console

from xarch.diff.compare import platform_matches
from xarch.diff.layers import read_layer
from xarch.diff.sources import ImageSource, PlatformImage, open_source
from xarch.diff.textdiff import contents
from xarch.errors import InputError
from xarch.jsonbytes import exact
from xarch.visible import visible

STATUS = "var/lib/dpkg/status"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def choose(source: ImageSource, platform: str | None) -> PlatformImage:
    """The image of PLATFORM (e.g. arm64, linux/arm64); without one, the only image.
    InputError names the platforms there are."""
    found = [image for image in source.images if not platform or platform_matches(image.platform, platform)]
    there = ", ".join(image.platform for image in source.images)
    if not found:
        raise InputError(f"{source.label}: no image for {platform} (platforms: {there})")
    if len(found) > 1 and platform:
        # Two index entries for one platform: which one is meant cannot be chosen by platform.
        digests = ", ".join(image.manifest_digest or image.config_digest for image in found)
        raise InputError(f"{source.label} holds {len(found)} images for {platform} ({digests}); "
                         "an index should name each platform once")
    if len(found) > 1:
        raise InputError(f"{source.label} holds {len(found)} images ({there}): choose one with --platform")
    return found[0]


def file_list(image: PlatformImage, label: str) -> list[dict[str, Any]]:
    """Every path of IMAGE after all layers, sorted: path, type, mode, owner, size, link, layer."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in image.layers:
        files = read_layer(layer, label)
        # Whiteouts hide what the layers below hold, never their own layer's files (OCI image spec,
        # layer.md "Whiteouts"): all of this layer's are applied before any of its entries is added.
        kept = []
        for path in files.order:
            name = path.rsplit("/", 1)[-1]
            folder = path.rsplit("/", 1)[0] if "/" in path else ""
            if name == OPAQUE:
                for known in [p for p in merged if p.startswith(folder + "/")]:
                    del merged[known]
            elif name.startswith(WHITEOUT):
                gone = (folder + "/" if folder else "") + name[len(WHITEOUT):]
                for known in [p for p in merged if p == gone or p.startswith(gone + "/")]:
                    del merged[known]
            else:
                kept.append(path)
        for path in kept:
            record = files.files[path]
            merged[path] = {"path": "/" + path if path != "." else "/", "type": record.type,
                            "mode": f"{record.mode:04o}", "owner": f"{record.uid}:{record.gid}",
                            "size": record.size, "link": record.linkname, "sha256": record.sha256,
                            "layer": layer.position}
    return [merged[path] for path in sorted(merged)]


def read_file(image: PlatformImage, path: str, label: str) -> bytes | None:
    """The content of PATH (relative) in the last layer that holds it, or None."""
    for entry in file_list(image, label):
        if entry["path"] == "/" + path and entry["type"] == "file":
            return contents(image.layers[entry["layer"]], {path}, limit=None).get(path)
    return None


def package_list(image: PlatformImage, label: str) -> list[dict[str, str]]:
    """The installed packages of IMAGE's dpkg database: name, version, architecture, source."""
    status = read_file(image, STATUS, label)
    if status is None:
        return []
    packages = []
    for paragraph in Deb822.iter_paragraphs(status.decode("utf-8", "replace").splitlines(keepends=True)):
        if "Package" not in paragraph or "installed" not in paragraph.get("Status", "installed"):
            continue
        packages.append({"name": paragraph["Package"], "version": paragraph.get("Version", ""),
                         "architecture": paragraph.get("Architecture", ""),
                         "source": paragraph.get("Source", "").split(" ")[0] or paragraph["Package"]})
    return sorted(packages, key=lambda p: (p["name"], p["architecture"]))


def show(target: str, platform: str | None, view: str, as_json: bool, console: Console) -> None:
    """Print VIEW (config, files or packages) of TARGET's image for PLATFORM."""
    with open_source(target) as source:
        image = choose(source, platform)
        if view == "config":
            if as_json:
                print(json.dumps(image.config, indent=2, sort_keys=True))
            else:
                console.print(f"# {image.platform} config {image.config_digest}", markup=False)
                print(json.dumps(image.config, indent=2, sort_keys=True))
            return
        if view == "files":
            files = file_list(image, source.label)
            if as_json:
                print(json.dumps(exact({"platform": image.platform, "files": files}), indent=2))
                return
            for entry in files:
                link = f" -> {visible(entry['link'])}" if entry["link"] else ""
                console.print(f"{entry['type']:<8} {entry['mode']} {entry['owner']:>9} {entry['size']:>10} "
                              f"{visible(entry['path'])}{link}", markup=False, highlight=False)
            return
        packages = package_list(image, source.label)
        if as_json:
            print(json.dumps({"platform": image.platform, "packages": packages}, indent=2))
            return
        if not packages:
            console.print(f"{image.platform}: no dpkg database (/{STATUS}) in this image", markup=False)
        for package in packages:
            line = f"{package['name']:<32} {package['version']:<32} {package['architecture']}"
            console.print(visible(line), markup=False, highlight=False)
