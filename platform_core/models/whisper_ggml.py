"""Convert a Whisper model from CTranslate2 (faster-whisper) format to a whisper.cpp ggml file.

No registry ships ggml whisper weights, but two ship CTranslate2 ones. The conversion is a
re-labelling: split CTranslate2's fused attention projections back into OpenAI's query/key/value
tensors, add the mel filterbank and the byte-level vocabulary whisper.cpp expects in its header.

CTranslate2 `model.bin` (little-endian): u32 version, string spec name, u32 revision, u32 count,
then per variable: string name, i8 ndim, u32 dims[ndim], i8 dtype, u32 nbytes, raw data; then
u32 alias count and (alias, target) string pairs. A string is u16 length (with NUL) + bytes.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from platform_core.errors import StudioError

GGML_MAGIC = 0x67676D6C
SAMPLE_RATE = 16000
N_FFT = 400
_CT2_DTYPES: dict[int, type[np.generic]] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ConversionError(StudioError, ValueError):
    """A CTranslate2 model that cannot be converted to ggml."""


# --- reading CTranslate2 -------------------------------------------------------------------------


def read_ct2(buf: bytes | bytearray | mmap.mmap) -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 model.bin, as arrays viewing `buf` (no copies)."""
    view = memoryview(buf)
    pos = 0

    def take(fmt: str) -> tuple[int, ...]:
        nonlocal pos
        values = struct.unpack_from(fmt, view, pos)
        pos += struct.calcsize(fmt)
        return values

    def string() -> str:
        nonlocal pos
        (length,) = take("<H")
        text = bytes(view[pos : pos + length - 1]).decode("utf-8")
        pos += length
        return text

    (version,) = take("<I")
    if version < 5:
        raise ConversionError(f"unsupported CTranslate2 model version {version}")
    spec = string()
    if spec != "WhisperSpec":
        raise ConversionError(f"not a Whisper model (spec {spec!r})")
    take("<I")  # spec revision
    (count,) = take("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        (ndim,) = take("<b")
        shape = take(f"<{ndim}I") if ndim else ()
        (dtype_id,) = take("<b")
        (nbytes,) = take("<I")
        dtype = _CT2_DTYPES.get(dtype_id)
        if dtype is None:
            raise ConversionError(f"{name}: unsupported CTranslate2 dtype {dtype_id}")
        variables[name] = np.frombuffer(view[pos : pos + nbytes], dtype=dtype).reshape(shape)
        pos += nbytes
    (aliases,) = take("<I")
    for _ in range(aliases):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


# --- header pieces: mel filterbank and vocabulary ------------------------------------------------


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mel = hz / f_sp
    high = hz >= min_log_hz
    mel[high] = min_log_mel + np.log(hz[high] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    hz = mel * f_sp
    high = mel >= min_log_mel
    hz[high] = min_log_hz * np.exp(logstep * (mel[high] - min_log_mel))
    return hz


def mel_filterbank(n_mels: int = 80, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> npt.NDArray[np.float32]:
    """Triangular Slaney-normalised mel filters, (n_mels, n_fft//2+1), as librosa.filters.mel computes."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sr / 2]))[0], n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE shows each byte as a printable character; map them back to bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def read_vocabulary(path: Path) -> list[bytes]:
    """Byte strings of the regular tokens: every line of vocabulary.txt before `<|endoftext|>`."""
    decoder = _byte_decoder()
    tokens: list[bytes] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line == "<|endoftext|>":
            return tokens
        tokens.append(bytes(decoder[ch] for ch in line))
    raise ConversionError(f"{path}: no <|endoftext|> token")


# --- tensor mapping ------------------------------------------------------------------------------


def _linear(prefix: str, src: dict[str, np.ndarray], ct2: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{prefix}.weight", src[f"{ct2}/weight"]
    yield f"{prefix}.bias", src[f"{ct2}/bias"]


def _norm(prefix: str, src: dict[str, np.ndarray], ct2: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{prefix}.weight", src[f"{ct2}/gamma"]
    yield f"{prefix}.bias", src[f"{ct2}/beta"]


def _qkv(prefix: str, weight: np.ndarray, bias: np.ndarray, parts: str) -> Iterator[tuple[str, np.ndarray]]:
    """Split a fused projection; OpenAI's key projection has no bias (CTranslate2 stores zeros)."""
    n = weight.shape[1]
    for i, part in enumerate(parts):
        name = {"q": "query", "k": "key", "v": "value"}[part]
        yield f"{prefix}.{name}.weight", weight[i * n : (i + 1) * n]
        if part != "k":
            yield f"{prefix}.{name}.bias", bias[i * n : (i + 1) * n]


def _layers(src: dict[str, np.ndarray], side: str) -> int:
    found = {int(m.group(1)) for k in src if (m := re.match(rf"{side}/layer_(\d+)/", k))}
    return max(found) + 1


def openai_tensors(src: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """The model's tensors under OpenAI's names (whisper.cpp looks them up by these)."""
    yield "encoder.positional_embedding", src["encoder/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        yield f"encoder.{conv}.weight", src[f"encoder/{conv}/weight"]
        yield f"encoder.{conv}.bias", src[f"encoder/{conv}/bias"].reshape(-1, 1)
    for i in range(_layers(src, "encoder")):
        ct2, oa = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        att = f"{ct2}/self_attention"
        yield from _norm(f"{oa}.attn_ln", src, f"{att}/layer_norm")
        yield from _qkv(f"{oa}.attn", src[f"{att}/linear_0/weight"], src[f"{att}/linear_0/bias"], "qkv")
        yield from _linear(f"{oa}.attn.out", src, f"{att}/linear_1")
        yield from _norm(f"{oa}.mlp_ln", src, f"{ct2}/ffn/layer_norm")
        yield from _linear(f"{oa}.mlp.0", src, f"{ct2}/ffn/linear_0")
        yield from _linear(f"{oa}.mlp.2", src, f"{ct2}/ffn/linear_1")
    yield from _norm("encoder.ln_post", src, "encoder/layer_norm")
    yield "decoder.positional_embedding", src["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", src["decoder/embeddings/weight"]
    for i in range(_layers(src, "decoder")):
        ct2, oa = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        att, cross = f"{ct2}/self_attention", f"{ct2}/attention"
        yield from _norm(f"{oa}.attn_ln", src, f"{att}/layer_norm")
        yield from _qkv(f"{oa}.attn", src[f"{att}/linear_0/weight"], src[f"{att}/linear_0/bias"], "qkv")
        yield from _linear(f"{oa}.attn.out", src, f"{att}/linear_1")
        yield from _norm(f"{oa}.cross_attn_ln", src, f"{cross}/layer_norm")
        yield from _qkv(f"{oa}.cross_attn", src[f"{cross}/linear_0/weight"], src[f"{cross}/linear_0/bias"], "q")
        yield from _qkv(f"{oa}.cross_attn", src[f"{cross}/linear_1/weight"], src[f"{cross}/linear_1/bias"], "kv")
        yield from _linear(f"{oa}.cross_attn.out", src, f"{cross}/linear_2")
        yield from _norm(f"{oa}.mlp_ln", src, f"{ct2}/ffn/layer_norm")
        yield from _linear(f"{oa}.mlp.0", src, f"{ct2}/ffn/linear_0")
        yield from _linear(f"{oa}.mlp.2", src, f"{ct2}/ffn/linear_1")
    yield from _norm("decoder.ln", src, "decoder/layer_norm")


# --- writing ggml --------------------------------------------------------------------------------

_F32_NAMES = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}


def _write_tensor(out: BinaryIO, name: str, data: np.ndarray) -> None:
    # whisper.cpp wants 1-D tensors, conv biases and positional embeddings in f32, the rest f16.
    f32 = data.ndim < 2 or name in _F32_NAMES
    data = np.ascontiguousarray(data, dtype=np.float32 if f32 else np.float16)
    encoded = name.encode("utf-8")
    out.write(struct.pack("<iii", data.ndim, len(encoded), 0 if f32 else 1))
    out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))  # ggml lists dims fastest first
    out.write(encoded)
    out.write(data.tobytes())


def _load_model_bin(parts: Sequence[Path]) -> bytearray | mmap.mmap:
    if len(parts) == 1:
        with parts[0].open("rb") as fh:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    buf = bytearray(sum(p.stat().st_size for p in parts))  # a split model.bin: join the parts once
    view, pos = memoryview(buf), 0
    for part in parts:
        with part.open("rb") as fh:
            pos += fh.readinto(view[pos:])
    return buf


def convert_ct2_to_ggml(sources: Sequence[Path], dest: Path, progress: Callable[[float], None] | None = None) -> None:
    """Write whisper.cpp's ggml file `dest` from CTranslate2 files: `model.bin` (or its parts in order,
    named model.bin*), `vocabulary.txt`; other files (config.json, tokenizer.json) are ignored."""
    parts = [p for p in sources if p.name.startswith("model.bin")]
    vocab = [p for p in sources if p.name == "vocabulary.txt"]
    if not parts or not vocab:
        raise ConversionError("need model.bin and vocabulary.txt")
    buf = _load_model_bin(parts)
    src = read_ct2(buf)
    tokens = read_vocabulary(vocab[0])
    n_mels = src["encoder/conv1/weight"].shape[1]
    hparams = [
        src["decoder/embeddings/weight"].shape[0],  # n_vocab
        *src["encoder/position_encodings/encodings"].shape,  # n_audio_ctx, n_audio_state
        int(src["encoder/num_heads"]),
        _layers(src, "encoder"),
        *src["decoder/position_encodings/encodings"].shape,  # n_text_ctx, n_text_state
        int(src["decoder/num_heads"]),
        _layers(src, "decoder"),
        n_mels,
        1,  # ftype: mostly f16
    ]
    filters = mel_filterbank(n_mels)
    tensors = list(openai_tensors(src))
    with dest.open("wb") as out:
        out.write(struct.pack("<I", GGML_MAGIC))
        out.write(struct.pack("<11i", *hparams))
        out.write(struct.pack("<ii", *filters.shape))
        out.write(filters.tobytes())
        out.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            out.write(struct.pack("<i", len(token)) + token)
        for i, (name, data) in enumerate(tensors):
            _write_tensor(out, name, data)
            if progress:
                progress((i + 1) / len(tensors))
