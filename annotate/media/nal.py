"""Whether a compressed picture is a reference picture, read from its NAL unit header.

A reference picture is one later pictures may predict from: a decoder must decode it to
decode them. H.264 marks it in every slice's NAL header (``nal_ref_idc`` != 0); HEVC marks
the others (sub-layer non-reference NAL unit types: TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N,
RSV_VCL_N10/12/14). These are the marks FFmpeg's ``skip_frame = NONREF`` drops pictures by,
so a picture marked referenced here is one the crop stage decodes anyway when a later
frame of its chain is wanted.

Packets come in one of two framings: length-prefixed NAL units (MP4 / MOV / MKV: AVCC for
H.264, HVCC for HEVC; the length size is in the stream's extradata) or Annex B start codes
(``00 00 01``; MPEG-TS, raw streams). Other codecs are not read (``None``: not known).
"""
from __future__ import annotations

from dataclasses import dataclass

H264_SLICE_TYPES = (1, 5)                        # coded slice of a non-IDR / IDR picture
HEVC_VCL_TYPES = range(0, 32)                    # coded slice segments
HEVC_NON_REFERENCE_TYPES = (0, 2, 4, 6, 8, 10, 12, 14)


@dataclass(frozen=True)
class Framing:
    """How a stream's packets hold NAL units: codec ('h264' or 'hevc') and the NAL length
    prefix size in bytes (1, 2 or 4), 0 for Annex B start codes."""

    codec: str
    length_size: int


def stream_framing(codec: str, extradata: bytes | None) -> Framing | None:
    """The framing of a stream's packets from its codec name and extradata; None for a
    codec whose reference marks are not read here."""
    if codec not in ("h264", "hevc"):
        return None
    data = bytes(extradata or b"")
    if codec == "h264" and len(data) >= 5 and data[0] == 1:                 # avcC record
        return Framing(codec, (data[4] & 3) + 1)
    if codec == "hevc" and len(data) >= 22 and data[0] == 1:                # hvcC record
        return Framing(codec, (data[21] & 3) + 1)
    return Framing(codec, 0)


def _nal_headers(data, length_size: int):
    """The offset of each NAL unit's header in one packet, in order: after each length
    prefix (bytes-like data), or after each ``00 00 01`` start code (``bytes`` data)."""
    n = len(data)
    if length_size:
        i = 0
        while i + length_size < n:
            size = int.from_bytes(data[i:i + length_size], "big")
            yield i + length_size
            i += length_size + size
        return
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        yield i + 3
        i = data.find(b"\x00\x00\x01", i + 3)


def picture_is_referenced(data, framing: Framing) -> bool | None:
    """Whether the picture in one packet (bytes-like) is a reference picture, from its first
    slice's NAL header; None when the packet holds no slice."""
    if not framing.length_size:
        data = bytes(data)
    for at in _nal_headers(data, framing.length_size):
        if at >= len(data):
            return None
        header = data[at]
        if framing.codec == "h264":
            if header & 0x1F in H264_SLICE_TYPES:
                return (header >> 5) & 3 != 0
        else:
            kind = (header >> 1) & 0x3F
            if kind in HEVC_VCL_TYPES:
                return kind not in HEVC_NON_REFERENCE_TYPES
    return None
