"""Reference marks from NAL unit headers, on hand-made packets (real streams: test_video.py)."""
from annotate.media.nal import Framing, picture_is_referenced, stream_framing

AVCC = bytes([1, 100, 0, 40, 0xFF])              # avcC record: 4-byte NAL lengths
HVCC = bytes([1] + [0] * 20 + [0x0F])            # hvcC record: byte 21 low bits = 3 -> 4 bytes


def prefixed(*nals: bytes, size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


def test_framing_from_codec_and_extradata():
    assert stream_framing("h264", AVCC) == Framing("h264", 4)
    assert stream_framing("h264", bytes([1, 100, 0, 40, 0xFD])) == Framing("h264", 2)
    assert stream_framing("h264", b"") == Framing("h264", 0)           # Annex B
    assert stream_framing("hevc", HVCC) == Framing("hevc", 4)
    assert stream_framing("mpeg4", b"") is None


def test_h264_slices_after_other_units():
    sei, ref_slice, nonref_slice = bytes([0x06, 5]), bytes([0x41, 0x9A]), bytes([0x01, 0x9E])
    framing = Framing("h264", 4)
    assert picture_is_referenced(prefixed(sei, ref_slice), framing) is True
    assert picture_is_referenced(prefixed(sei, nonref_slice), framing) is False
    assert picture_is_referenced(prefixed(bytes([0x65, 0x88])), framing) is True          # IDR
    assert picture_is_referenced(prefixed(sei), framing) is None                           # no slice
    annex_b = b"\x00\x00\x00\x01" + sei + b"\x00\x00\x01" + nonref_slice
    assert picture_is_referenced(annex_b, Framing("h264", 0)) is False
    assert picture_is_referenced(memoryview(prefixed(ref_slice, size=2)), Framing("h264", 2)) is True


def test_hevc_sub_layer_non_reference_types():
    framing = Framing("hevc", 4)

    def nal(kind: int) -> bytes:
        return bytes([kind << 1, 1, 0xAF])

    prefix_sei = nal(39)
    assert picture_is_referenced(prefixed(prefix_sei, nal(1)), framing) is True            # TRAIL_R
    assert picture_is_referenced(prefixed(prefix_sei, nal(0)), framing) is False           # TRAIL_N
    assert picture_is_referenced(prefixed(nal(8)), framing) is False                       # RASL_N
    assert picture_is_referenced(prefixed(nal(19)), framing) is True                       # IDR_W_RADL
    assert picture_is_referenced(prefixed(prefix_sei), framing) is None
