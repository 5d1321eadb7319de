"""Which packets to decode: frame numbers from pts, clean key frames, runs of packets."""
import numpy as np

from annotate.media.frame_plan import clean_starts, complete_prefix, decode_segments, presentation_ranks

# Decode order of a closed-GOP stream with B-frames (I0 P3 B1 B2 | I4 P7 B5 B6 | I8 ...): pts
# in frame units, key frames every 4.
PTS = np.array([0, 3, 1, 2, 4, 7, 5, 6, 8, 11, 9, 10])
KEY = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], bool)


def test_ranks_number_frames_by_presentation_order():
    assert presentation_ranks(PTS * 1001 + 7).tolist() == PTS.tolist()
    assert presentation_ranks(np.array([0, 2, 2])) is None            # a repeated pts numbers nothing
    assert presentation_ranks(np.array([], np.int64)).tolist() == []


def test_clean_starts_are_closed_gop_key_frames():
    assert np.flatnonzero(clean_starts(PTS, KEY)).tolist() == [0, 4, 8]
    # Open GOP: the key frame I4 is decoded before B2, B3 shown before it (leading
    # pictures that predict from the previous GOP): decoding cannot start there.
    pts = np.array([0, 1, 4, 2, 3, 5])
    key = np.array([1, 0, 1, 0, 0, 0], bool)
    assert np.flatnonzero(clean_starts(presentation_ranks(pts), key)).tolist() == [0]
    # Decoding can always start at the first packet, key frame or not.
    assert clean_starts(np.array([0, 1]), np.array([0, 0], bool)).tolist() == [True, False]


def test_segments_jump_to_the_key_frame_before_each_wanted_frame():
    starts = clean_starts(PTS, KEY)
    # Frame 5 (packet 6) needs I4 and P7 before it; frame 11 (packet 9) starts at I8,
    # so B6 (packet 7) is never sent.
    assert decode_segments(PTS, starts, [5, 11]) == [(4, 6), (8, 9)]
    # Frame 6 is the last packet before I8: no packet to jump over, one run.
    assert decode_segments(PTS, starts, [6, 11]) == [(4, 9)]
    # Frame 1 then frame 2: one run; frame 2 is packet 3.
    assert decode_segments(PTS, starts, [1, 2]) == [(0, 3)]
    # Frame 3 is P3 (packet 1): B1 and B2 after it are never sent.
    assert decode_segments(PTS, starts, [3, 4]) == [(0, 1), (4, 4)]
    # Wanted frames in neighbouring GOPs with nothing to jump over between them: one run.
    assert decode_segments(PTS, starts, [2, 4]) == [(0, 4)]
    assert decode_segments(PTS, starts, [8]) == [(8, 8)]
    assert decode_segments(PTS, starts, []) == []


def test_a_cut_short_index_keeps_what_comes_before_its_last_clean_start():
    ranks = presentation_ranks(PTS[:7])
    assert complete_prefix(ranks, clean_starts(ranks, KEY[:7])) == 4
