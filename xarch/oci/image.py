"""Image config and manifest of one platform."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xarch.oci.digest import OCI_CONFIG, OCI_MANIFEST, Descriptor, canonical_json
from xarch.oci.layer import Layer


def rfc3339(epoch: int) -> str:
    """The epoch as OCI's `created`: whole seconds, UTC, the same on every host."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RuntimeConfig:
    """The `config` object of an OCI image config (what `docker run` uses)."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The image config's `config` object (OCI image spec, config.md): only the fields that are set."""
        result: dict[str, Any] = {}
        if self.user:
            result["User"] = self.user
        if self.exposed_ports:
            result["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            result["Env"] = list(self.env)
        if self.entrypoint is not None:
            result["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            result["Cmd"] = list(self.cmd)
        if self.volumes:
            result["Volumes"] = {volume: {} for volume in self.volumes}
        if self.workdir:
            result["WorkingDir"] = self.workdir
        if self.labels:
            result["Labels"] = dict(self.labels)
        if self.stop_signal:
            result["StopSignal"] = self.stop_signal
        return result


@dataclass(frozen=True)
class Image:
    """One platform's image: its config and manifest bytes, and the layers they name."""

    platform: dict[str, str]
    config_bytes: bytes
    manifest_bytes: bytes
    layers: tuple[Layer, ...]

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_CONFIG, self.config_bytes)

    @property
    def manifest_descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_MANIFEST, self.manifest_bytes, platform=self.platform)

    def blob_sources(self) -> dict[str, bytes | Path]:
        """Every blob of this image by digest, the manifest included: its bytes, or for a layer
        written to the store the file that holds them (copied or streamed by writers)."""
        result: dict[str, bytes | Path] = {layer.digest: layer.source for layer in self.layers}
        result[self.config_descriptor.digest] = self.config_bytes
        result[self.manifest_descriptor.digest] = self.manifest_bytes
        return result

    def blobs(self) -> dict[str, bytes]:
        """Every blob of this image by digest, read into memory (small images and tests only)."""
        return {digest: source if isinstance(source, bytes) else source.read_bytes()
                for digest, source in self.blob_sources().items()}


def build_image(
    platform: dict[str, str],
    layers: list[Layer],
    runtime: RuntimeConfig,
    epoch: int,
    compressor: str,
    annotations: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Image:
    """NOTES: history entries without a layer (how the build went, e.g. a stage's strategy),
    placed before the layers' entries as they happened before them."""
    created = rfc3339(epoch)
    config: dict[str, Any] = {
        **platform,
        "created": created,
        "config": runtime.to_json(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            *({"created": created, "created_by": note, "empty_layer": True} for note in notes),
            *({"created": created, "created_by": f"xarch layer {layer.name}", "comment": compressor}
              for layer in layers),
        ],
    }
    config_bytes = canonical_json(config)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor.of(OCI_CONFIG, config_bytes).to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Image(dict(platform), config_bytes, canonical_json(manifest), tuple(layers))
