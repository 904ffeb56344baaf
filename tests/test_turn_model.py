"""The Smart Turn model: its file from the registry package, verified; our Whisper log-mel features;
its judgement of real (Piper) speech, complete and cut mid-sentence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from platform_core.engines.turn.features import log_mel
from platform_core.engines.turn.smart_turn import SmartTurn
from platform_core.models.errors import ModelError
from platform_core.models.manifest import Manifest, OutputFile, SourceFile, load_manifest
from platform_core.models.store import ensure_model, sha256_file
from tests.speech import speech_16k

MODEL_ID = "smart-turn-v3.2"


def test_the_model_comes_pinned_from_its_package_and_verified() -> None:
    spec = load_manifest().get(MODEL_ID)
    assert spec.kind == "turn" and spec.default and spec.license == "BSD-2-Clause"
    assert [p.requirement for p in spec.packages] == ["pipecat-ai==1.14.0"]
    assert spec.pip_flags == "--no-deps"  # the wheel only carries the file; Pipecat is never imported
    path = ensure_model(MODEL_ID, verify=True)
    assert path.name == "smart-turn-v3.2-cpu.onnx" and path.stat().st_size == 8_679_182
    assert sha256_file(path) == spec.outputs[0].sha256 == spec.sources[0].sha256


def test_a_wrong_hash_names_the_package_to_reinstall(tmp_path: Path) -> None:
    spec = load_manifest().get(MODEL_ID)
    source, output = spec.sources[0], spec.outputs[0]
    wrong = dataclasses.replace(
        spec,
        sources=(SourceFile(source.package, source.path, "0" * 64, source.size),),
        outputs=(OutputFile(output.name, "0" * 64, output.size),),
    )
    with pytest.raises(ModelError) as info:
        ensure_model(MODEL_ID, manifest=Manifest((wrong,)), cache_dir=tmp_path)
    assert "pipecat-ai" in str(info.value)
    assert "pip install --force-reinstall --no-deps pipecat-ai==1.14.0" in info.value.hint


def test_features_are_whispers_80_bands_every_10_ms() -> None:
    rate = 16_000
    t = np.arange(8 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    features = log_mel(tone)
    assert features.shape == (80, 800) and features.dtype == np.float32
    # Slaney mel: 1 kHz is band ~26 of 80 (0-8 kHz); the loudest band holds the tone.
    assert 24 <= int(np.argmax(features.mean(axis=1))) <= 28
    # Whisper's scaling: at most 8 (log10) below the peak, then (x + 4) / 4.
    assert features.max() - features.min() <= 2.0 + 1e-4
    quiet_then_tone = np.concatenate([np.zeros(4 * rate, np.float32), tone[: 4 * rate]])
    halves = log_mel(quiet_then_tone)
    band = int(np.argmax(features.mean(axis=1)))
    assert halves[band, :390].max() < halves[band, 410:].min() - 1.0  # silence is the floor, the tone above it


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn(ensure_model(MODEL_ID))


def _spoken(text: str, silence_after_s: float = 0.2) -> np.ndarray:
    """Piper speech trimmed to its words, with the silence the listener has when it asks."""
    audio = speech_16k(text)
    voiced = np.nonzero(np.abs(audio) > 0.01)[0]
    tail = np.zeros(int(16_000 * silence_after_s), np.float32)
    return np.concatenate([np.zeros(4_800, np.float32), audio[voiced[0] : voiced[-1] + 1], tail])


@pytest.mark.parametrize("text", ["What's the weather in Lisbon?", "What is the capital of France?"])
def test_a_complete_question_is_judged_complete(model: SmartTurn, text: str) -> None:
    assert model.completion_probability(_spoken(text)) >= 0.5


@pytest.mark.parametrize("text", ["Can you tell me the weather in", "So I was wondering if"])
def test_a_sentence_cut_mid_way_is_judged_unfinished(model: SmartTurn, text: str) -> None:
    assert model.completion_probability(_spoken(text)) < 0.5


def test_only_the_last_8_seconds_count(model: SmartTurn) -> None:
    question = _spoken("What is the capital of France?")
    long = np.concatenate([_spoken("So I was wondering if"), np.zeros(9 * 16_000, np.float32), question])
    assert model.completion_probability(long) == pytest.approx(model.completion_probability(question), abs=0.05)
