"""(frame, person) row keys: ordering and matching."""
import numpy as np

from annotate.core.rowkeys import frame_person_keys, match_keys


def test_keys_sort_as_frame_then_person_including_unclaimed():
    frame = np.array([3, 2, 2, 2, 10**6])
    person = np.array([0, 5, -1, 0, 7])
    order = np.argsort(frame_person_keys(frame, person))
    assert list(zip(frame[order], person[order])) == [(2, -1), (2, 0), (2, 5), (3, 0), (10**6, 7)]
    assert len(set(frame_person_keys(np.repeat(np.arange(50), 3), np.tile([-1, 0, 1], 50)))) == 150


def test_match_finds_rows_in_any_order_and_reports_missing():
    keys = frame_person_keys(np.array([5, 1, 3, 1]), np.array([0, 1, 2, 0]))
    wanted = frame_person_keys(np.array([1, 3, 4, 5]), np.array([0, 2, 0, 0]))
    pos, found = match_keys(keys, wanted)
    assert found.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(keys[pos[found]], wanted[found])
    pos, found = match_keys(keys[:0], wanted)                      # empty table: nothing found
    assert not found.any() and pos.shape == (4,)
    pos, found = match_keys(keys, frame_person_keys(np.array([9]), np.array([9])))   # past the last key
    assert not found.any()
