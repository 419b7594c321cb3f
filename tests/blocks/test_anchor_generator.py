"""AnchorGenerator: hand-computed base anchors, grid order and shifts, valid flags."""
import numpy as np
import pytest

from src.blocks.anchor_generator import AnchorGenerator


def test_base_anchors_stride4_scale8():
    generator = AnchorGenerator(strides=[4], ratios=[0.5, 1.0, 2.0], scales=[8])
    # side 4 * 8 = 32; ratio 0.5: w = 32 / sqrt(0.5) = 45.2548, h = 32 * sqrt(0.5) = 22.6274
    # ratio 1: 32 x 32; ratio 2: w = 22.6274, h = 45.2548; all centred at (0, 0)
    half_long, half_short = 22.627417, 11.313708
    expected = np.array([[-half_long, -half_short, half_long, half_short],
                         [-16, -16, 16, 16],
                         [-half_short, -half_long, half_short, half_long]], np.float32)
    np.testing.assert_allclose(generator.base_anchors[0], expected, rtol=1e-5)
    assert generator.num_base_anchors == 3


def test_rounded_base_anchors_as_torchvision_rounds_them():
    generator = AnchorGenerator(strides=[4, 64], ratios=[0.5, 1.0, 2.0], scales=[8], round_base=True)
    # stride 4: halves 22.627 -> 23 and 11.314 -> 11; stride 64 (side 512): 362.04 -> 362 and 181.02 -> 181
    np.testing.assert_array_equal(generator.base_anchors[0], [[-23, -11, 23, 11], [-16, -16, 16, 16],
                                                              [-11, -23, 11, 23]])
    np.testing.assert_array_equal(generator.base_anchors[1], [[-362, -181, 362, 181], [-256, -256, 256, 256],
                                                              [-181, -362, 181, 362]])
    shifted = generator.grid_anchors([(1, 2), (1, 1)])[0]
    np.testing.assert_array_equal(shifted[3], [4 - 23, -11, 4 + 23, 11])


def test_ratio_major_order_with_two_scales():
    generator = AnchorGenerator(strides=[8], ratios=[1.0, 4.0], scales=[1, 2])
    widths = generator.base_anchors[0][:, 2] - generator.base_anchors[0][:, 0]
    heights = generator.base_anchors[0][:, 3] - generator.base_anchors[0][:, 1]
    # (ratio 1, scale 1), (ratio 1, scale 2), (ratio 4, scale 1), (ratio 4, scale 2)
    np.testing.assert_allclose(widths, [8, 16, 4, 8], rtol=1e-6)
    np.testing.assert_allclose(heights, [8, 16, 16, 32], rtol=1e-6)


def test_grid_anchors_shift_row_major():
    generator = AnchorGenerator(strides=[4, 8], ratios=[0.5, 1.0, 2.0], scales=[8])
    anchors = generator.grid_anchors([(2, 3), (1, 2)])
    assert anchors[0].shape == (2 * 3 * 3, 4) and anchors[0].dtype == np.float32
    assert anchors[1].shape == (1 * 2 * 3, 4)
    level0 = anchors[0].reshape(2, 3, 3, 4)
    # location (y=1, x=2) -> shift (8, 4); its square anchor is 32 x 32 centred there
    np.testing.assert_allclose(level0[1, 2, 1], [8 - 16, 4 - 16, 8 + 16, 4 + 16])
    # first three rows are the base anchors (location 0 has shift 0), then x advances by one stride
    np.testing.assert_allclose(anchors[0][:3], generator.base_anchors[0])
    np.testing.assert_allclose(anchors[0][3:6] - anchors[0][:3], [[4, 0, 4, 0]] * 3, atol=1e-5)
    # level 1 (stride 8, side 64): second location shifted by (8, 0)
    np.testing.assert_allclose(anchors[1][4], [8 - 32, -32, 8 + 32, 32])


def test_valid_flags_cover_the_valid_area():
    generator = AnchorGenerator(strides=[4, 8], ratios=[1.0, 2.0], scales=[8])
    # valid area 10 x 13 (h x w): level 0 (4 x 5 map) -> rows < ceil(10/4)=3, cols < ceil(13/4)=4
    # level 1 (2 x 3 map) -> rows < min(ceil(10/8), 2) = 2, cols < ceil(13/8) = 2
    flags = generator.valid_flags([(4, 5), (2, 3)], (10, 13))
    expected0 = np.zeros((4, 5), bool)
    expected0[:3, :4] = True
    np.testing.assert_array_equal(flags[0], np.repeat(expected0.reshape(-1), 2))
    expected1 = np.zeros((2, 3), bool)
    expected1[:, :2] = True
    np.testing.assert_array_equal(flags[1], np.repeat(expected1.reshape(-1), 2))


def test_mismatched_levels_are_rejected():
    generator = AnchorGenerator(strides=[4, 8], ratios=[1.0], scales=[8])
    with pytest.raises(ValueError, match="feature map sizes"):
        generator.grid_anchors([(4, 4)])
