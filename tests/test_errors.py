"""The one error type: every explained failure carries `message` and `hint` and prints the same way,
and keeps the built-in base its callers catch it by."""

from __future__ import annotations

import pytest

from app.audio_io import AudioDeviceError
from app.recording import RecordingError
from platform_core.engines.base import EngineUnavailable
from platform_core.engines.llm import LLMError
from platform_core.errors import StudioError, explained
from platform_core.gateway.frames import ProtocolError
from platform_core.gateway.schema import SpecError
from platform_core.models import ModelError
from platform_core.models.whisper_ggml import ConversionError
from platform_core.platform import PlatformError
from platform_core.transport.client import CallError
from platform_core.transport.wav_source import AudioFileError

ALL = [
    EngineUnavailable,
    LLMError,
    ModelError,
    ConversionError,
    PlatformError,
    CallError,
    AudioFileError,
    AudioDeviceError,
    RecordingError,
    SpecError,
]


@pytest.mark.parametrize("error_type", ALL, ids=lambda t: t.__name__)
def test_every_error_has_a_message_and_a_hint(error_type: type[StudioError]) -> None:
    error = error_type("the model file is damaged", "reinstall it")
    assert isinstance(error, StudioError)
    assert (error.message, error.hint) == ("the model file is damaged", "reinstall it")
    assert str(error) == "the model file is damaged\n  -> reinstall it"
    assert str(error_type("no hint here")) == "no hint here"


@pytest.mark.parametrize(
    ("error_type", "base"),
    [
        (EngineUnavailable, RuntimeError),
        (LLMError, RuntimeError),
        (ModelError, RuntimeError),
        (PlatformError, RuntimeError),
        (CallError, RuntimeError),
        (AudioFileError, ValueError),
        (ConversionError, ValueError),
        (SpecError, ValueError),
    ],
    ids=lambda t: t.__name__,
)
def test_errors_keep_the_builtin_base_callers_catch(error_type: type[StudioError], base: type[Exception]) -> None:
    assert issubclass(error_type, base)


def test_model_errors_are_not_engine_errors() -> None:
    """The model store does not depend on the engines: callers catch ModelError by its own name."""
    assert not issubclass(ModelError, EngineUnavailable)


def test_a_protocol_error_names_its_code() -> None:
    error = ProtocolError("not_joined", "join the channel first")
    assert isinstance(error, StudioError)
    assert (error.code, error.detail, str(error)) == (
        "not_joined",
        "join the channel first",
        "not_joined: join the channel first",
    )


def test_events_with_a_hint_print_like_errors() -> None:
    """The command line prints an ErrorOccurred event's message and hint the way errors print."""
    assert explained("Lost Ollama", "start `ollama serve`") == str(StudioError("Lost Ollama", "start `ollama serve`"))
    assert explained("Lost Ollama") == "Lost Ollama"
