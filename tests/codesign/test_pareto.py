import math

import numpy as np
import pytest

from accelmap.codesign.pareto import hypervolume_2d, missed_by, non_dominated, plot_fronts, reference_point

INF, NAN = math.inf, math.nan

# A three-point staircase in the reference (4, 4): slabs 1*(4-3) + 1*(4-2) + 1*(4-1) = 6.
STAIRS = [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]
STAIRS_REF = (4.0, 4.0)
STAIRS_HV = 6.0


def test_non_dominated_drops_dominated_duplicate_and_nonfinite():
    pts = [
        (1.0, 4.0),   # front: smallest x
        (2.0, 2.0),   # front
        (3.0, 3.0),   # dominated by (2, 2)
        (2.0, 2.0),   # duplicate of row 1: only the first occurrence is kept
        (INF, 0.0),   # inf row: never on the front, although its y is the best
        (4.0, 1.0),   # front (would be dominated by (inf, 0) if inf counted: it does not)
        (0.5, NAN),   # nan row
    ]
    assert non_dominated(pts).tolist() == [True, True, False, False, False, True, False]


def test_non_dominated_equal_in_one_coordinate_is_dominated():
    # (1, 3) is equal in x and worse in y; (2, 1) is worse in x and equal in y.
    assert non_dominated([(1, 3), (1, 2), (2, 1), (3, 1)]).tolist() == [False, True, True, False]


def test_non_dominated_duplicate_keeps_first_even_when_first_is_later_in_sort():
    # The duplicates sort together; the earlier row index must win.
    assert non_dominated([(5, 5), (1, 1), (1, 1)]).tolist() == [False, True, False]


def test_non_dominated_empty_and_bad_shape():
    assert non_dominated(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError):
        non_dominated([1.0, 2.0, 3.0])


def test_hypervolume_single_point():
    assert hypervolume_2d([(1.0, 2.0)], (4.0, 5.0)) == pytest.approx((4 - 1) * (5 - 2))


def test_hypervolume_staircase_any_order():
    assert hypervolume_2d(STAIRS, STAIRS_REF) == pytest.approx(STAIRS_HV)
    assert hypervolume_2d(STAIRS[::-1], STAIRS_REF) == pytest.approx(STAIRS_HV)


def test_hypervolume_points_at_or_beyond_reference_add_nothing():
    # Beyond in x, on the x bound, on the y bound, inf and nan: none bounds any area.
    extra = [(5.0, 0.0), (4.0, 0.5), (0.5, 4.0), (INF, 0.0), (NAN, 0.1)]
    assert hypervolume_2d(STAIRS + extra, STAIRS_REF) == pytest.approx(STAIRS_HV)
    assert hypervolume_2d([(5.0, 0.0)], STAIRS_REF) == 0.0


def test_hypervolume_dominated_and_duplicate_points_do_not_change_it():
    assert hypervolume_2d(STAIRS + [(2.5, 2.5), (3.0, 3.5), (2.0, 2.0)], STAIRS_REF) == \
        pytest.approx(STAIRS_HV)


def test_hypervolume_better_point_adds_its_corner():
    # (1.5, 1.5) dominates (2, 2) and adds, column by column: x in [1.5, 2) where y in
    # [1.5, 3) was uncovered, 0.5*1.5 = 0.75; x in [2, 3) where y in [1.5, 2) was, 1*0.5 = 0.5;
    # nothing for x >= 3, already covered down to y = 1. Total 1.25.
    assert hypervolume_2d(STAIRS + [(1.5, 1.5)], STAIRS_REF) == pytest.approx(STAIRS_HV + 1.25)


def test_hypervolume_empty():
    assert hypervolume_2d(np.zeros((0, 2)), (1.0, 1.0)) == 0.0


def test_reference_point_max_over_sets_times_margin():
    a = [(1.0, 10.0), (2.0, 5.0)]
    b = [(4.0, 1.0), (INF, 0.0), (NAN, 100.0)]  # non-finite rows do not widen it
    assert reference_point(a, b) == pytest.approx((4.4, 11.0))
    assert reference_point(a, b, margin=0.5) == pytest.approx((6.0, 15.0))


def test_reference_point_without_finite_points_raises():
    with pytest.raises(ValueError):
        reference_point([(INF, 1.0)], np.zeros((0, 2)))


def test_missed_by_nonconvex_middle_point():
    # (3, 3) lies above the segment from (1, 4) to (4, 1) (which passes through (3, 2)), so
    # no positive weighting of the two metrics makes it the minimum.
    eps = np.array([(1.0, 4.0), (3.0, 3.0), (4.0, 1.0)])
    weights = np.linspace(0.0, 1.0, 101)
    winners = {int(np.argmin(w * eps[:, 0] + (1 - w) * eps[:, 1])) for w in weights}
    assert 1 not in winners
    weighted = eps[[0, 2]]
    assert missed_by(eps, weighted).tolist() == [False, True, False]


def test_missed_by_weak_dominance_and_tolerance():
    other = [(1.0, 4.0)]
    # Dominated by other with one coordinate equal: not missed. Tiny float noise in the
    # front point (relative 1e-12) must not make it missed; a real 1% gap does.
    front = [(1.0, 5.0), (1.0 * (1 - 1e-12), 4.0), (0.99, 4.0)]
    assert missed_by(front, other).tolist() == [False, False, True]


def test_missed_by_empty_other_misses_every_finite_point():
    assert missed_by([(1.0, 2.0), (INF, 1.0)], np.zeros((0, 2))).tolist() == [True, False]


def test_plot_fronts_writes_png(tmp_path):
    eps = [(1.0, 4.0), (3.0, 3.0), (4.0, 1.0), (5.0, 5.0)]
    weighted = [(1.0, 4.0), (4.0, 1.0)]
    out = tmp_path / "sub" / "fronts.png"
    got = plot_fronts(eps, weighted, ("energy (pJ)", "cycles"), out, title="conv1")
    assert got == out
    data = out.read_bytes()
    assert len(data) > 1000
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
