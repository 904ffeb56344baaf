"""A caller's SDP offer checked before anything is built for it: its size, its media sections and
whether aiortc can parse it at all. aiortc's parser and `setRemoteDescription` raise whatever the
malformed line provokes (ValueError, IndexError, KeyError, AssertionError, ...); `BadOffer` is the one
error that reaches the platform, with the reason a caller can act on."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import sdp

from platform_core.errors import StudioError

OFFER_HINT = "send a WebRTC offer with one sendrecv audio track (what a browser or aiortc creates)"


class BadOffer(StudioError, ValueError):
    """The caller's offer cannot be answered; `message` says why, `hint` what a valid one looks like."""

    def __init__(self, message: str, hint: str = OFFER_HINT) -> None:
        super().__init__(message, hint)


@dataclass(frozen=True)
class OfferLimits:
    max_bytes: int
    max_audio_sections: int
    max_media_sections: int


_DTLS_ROLES = ("actpass", "active", "passive")  # what aiortc accepts (it has no `holdconn`)


def _count_sections(offer_sdp: str) -> tuple[int, int]:
    """(media sections, audio sections), counted on the raw lines so a huge offer is never parsed.
    Also refuses an `a=setup` aiortc cannot parse (its parser says only KeyError)."""
    media = audio = 0
    for line in offer_sdp.splitlines():
        if line.startswith("m="):
            media += 1
            audio += line.startswith("m=audio ")
        elif line.startswith("a=setup") and line.removeprefix("a=setup:") not in _DTLS_ROLES:
            raise BadOffer(
                f"the offer's {line[:40]!r} is not a DTLS role: it must be a=setup:actpass, active or passive"
            )
    return media, audio


def check_offer(offer_sdp: str, limits: OfferLimits) -> sdp.SessionDescription:
    """The parsed offer if it is within `limits` and offers a sendable audio track; else BadOffer."""
    size = len(offer_sdp.encode("utf-8", "replace"))
    if size > limits.max_bytes:
        raise BadOffer(f"the offer's SDP is {size:,} bytes; the limit is {limits.max_bytes:,}")
    media, audio = _count_sections(offer_sdp)
    if audio > limits.max_audio_sections:
        raise BadOffer(
            f"the offer has {audio} audio sections; the platform answers at most {limits.max_audio_sections}"
        )
    if media > limits.max_media_sections:
        raise BadOffer(f"the offer has {media} media sections; the limit is {limits.max_media_sections}")
    parsed = parse_offer(offer_sdp)
    sections = [m for m in parsed.media if m.kind == "audio"]
    if not sections:
        raise BadOffer("the offer has no audio section: the caller must offer an audio track")
    _check_audio(sections[0])
    return parsed


def _check_audio(audio: sdp.MediaDescription) -> None:
    """What aiortc needs of the audio section, said plainly (aiortc would fail on it later, obscurely)."""
    if audio.direction not in (None, "sendrecv", "sendonly"):
        raise BadOffer(f"the offer's audio is {audio.direction}: the caller must send a microphone track (sendrecv)")
    if audio.ice is None or not audio.ice.usernameFragment or not audio.ice.password:
        raise BadOffer("the offer's audio section has no ICE credentials (a=ice-ufrag and a=ice-pwd)")
    if audio.dtls is None or not audio.dtls.fingerprints:
        raise BadOffer("the offer's audio section has no DTLS fingerprint and role (a=fingerprint and a=setup)")
    for candidate in audio.ice_candidates:
        # aioice checks a candidate's address but not its port: one out of range kills its socket
        if not 0 < candidate.port < 65_536:
            raise BadOffer(f"the offer has a candidate with port {candidate.port}: ports are 1-65535")


def parse_offer(offer_sdp: str) -> sdp.SessionDescription:
    """aiortc's parse of the offer; any failure of the parser becomes BadOffer."""
    try:
        return sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:  # the parser's errors are whatever the bad line provokes
        raise BadOffer(f"the offer's SDP cannot be parsed ({describe(exc)})") from exc


def describe(exc: BaseException) -> str:
    """A short description of an error raised from inside aiortc, for the caller."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
