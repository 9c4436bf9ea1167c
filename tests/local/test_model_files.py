"""Assembling and verifying model files, with real (tiny) installed chunk distributions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from respgate.providers.local.model import LocalSetupError, ModelPreset, VerifiedFiles, assemble_preset, check_gguf

PARTS = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 10]


def _install_fake_parts(site: Path, count: int) -> None:
    """Chunk packages laid out as pip installs them: a package dir plus a dist-info RECORD."""
    for n in range(1, count + 1):
        package = f"tiny_model_part{n}"
        data = site / package / "data"
        data.mkdir(parents=True)
        (data / f"part{n:02d}.bin").write_bytes(PARTS[n - 1])
        info = site / f"{package}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tiny-model-part{n}\nVersion: 1.0\n")
        (info / "RECORD").write_text(f"{package}/data/part{n:02d}.bin,,\n{package}-1.0.dist-info/METADATA,,\n")


def _preset(**overrides: object) -> ModelPreset:
    blob = b"".join(PARTS)
    fields: dict[str, object] = {
        "name": "tiny",
        "filename": "tiny.gguf",
        "distribution": "tiny-model-part{n}",
        "version": "1.0",
        "parts": 3,
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    fields.update(overrides)
    return ModelPreset(**fields)  # type: ignore[arg-type]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_parts_are_concatenated_in_numeric_order_and_recorded(site: Path, tmp_path: Path) -> None:
    _install_fake_parts(site, 3)
    verified = VerifiedFiles(record=tmp_path / "cache" / "verified.json")

    path = assemble_preset(_preset(), cache_dir=tmp_path / "cache", verified=verified)

    assert path.read_bytes() == b"".join(PARTS)
    assert verified.known_sha256(path) == _preset().sha256


def test_a_changed_cached_file_is_rebuilt(site: Path, tmp_path: Path) -> None:
    _install_fake_parts(site, 3)
    verified = VerifiedFiles(record=tmp_path / "cache" / "verified.json")
    path = assemble_preset(_preset(), cache_dir=tmp_path / "cache", verified=verified)
    path.write_bytes(b"GGUF" + b"x" * 156)  # same size, other content

    again = assemble_preset(_preset(), cache_dir=tmp_path / "cache", verified=verified)

    assert again.read_bytes() == b"".join(PARTS)


def test_missing_parts_name_the_pip_command(site: Path, tmp_path: Path) -> None:
    _install_fake_parts(site, 2)

    with pytest.raises(LocalSetupError, match=r"tiny-model-part3.*pip install tiny-model-part1==1.0"):
        assemble_preset(
            _preset(), cache_dir=tmp_path / "cache", verified=VerifiedFiles(record=tmp_path / "v.json")
        )


def test_parts_that_do_not_match_the_pinned_hash_are_refused(site: Path, tmp_path: Path) -> None:
    _install_fake_parts(site, 3)

    with pytest.raises(LocalSetupError, match="do not assemble into the expected model"):
        assemble_preset(
            _preset(sha256="0" * 64),
            cache_dir=tmp_path / "cache",
            verified=VerifiedFiles(record=tmp_path / "v.json"),
        )
    assert not (tmp_path / "cache" / "tiny.gguf").exists()


def test_user_model_files_must_be_gguf(tmp_path: Path) -> None:
    verified = VerifiedFiles(record=tmp_path / "v.json")
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04")

    with pytest.raises(LocalSetupError, match="not a GGUF"):
        check_gguf(not_gguf, sha256=None, verified=verified)
    with pytest.raises(LocalSetupError, match="does not exist"):
        check_gguf(tmp_path / "nope.gguf", sha256=None, verified=verified)
