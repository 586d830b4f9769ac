"""Training-time augmentation: random shifts (zero fill) and horizontal flips of uint8 batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpcli.data.augment import BLOCK, SIDE, augment, bilinear, elastic_field, gaussian_matrix, random_affine, translate, warp
from mlpcli.run.config import AugmentConfig, ElasticConfig


def Aug(**settings):
    """An AugmentConfig with only the given settings on (the defaults distort)."""
    return AugmentConfig(**{"shift": 0, "rotate": 0, "scale": 0, "elastic": None, **settings})


def reference_translate(X, dy, dx, flipped):
    """The obvious per-image, per-pixel loop that ``translate`` vectorizes."""
    images = X.reshape(-1, SIDE, SIDE)
    out = np.zeros_like(images)
    for i, image in enumerate(images):
        for r in range(SIDE):
            for c in range(SIDE):
                source_r, source_c = r - dy[i], c - dx[i]
                if 0 <= source_r < SIDE and 0 <= source_c < SIDE:
                    out[i, r, c] = image[source_r, source_c]
        if flipped[i]:
            out[i] = out[i, :, ::-1]
    return out.reshape(-1, SIDE * SIDE)


def images_with_border(m, border, rng):
    """uint8 images whose ink (values 1..255) stays ``border`` pixels away from every edge."""
    images = np.zeros((m, SIDE, SIDE), dtype=np.uint8)
    inner = SIDE - 2 * border
    images[:, border : SIDE - border, border : SIDE - border] = rng.integers(
        1, 256, size=(m, inner, inner)
    )
    return images.reshape(m, SIDE * SIDE)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 6),
    k=st.integers(0, 27),
)
def test_translate_matches_a_pixel_by_pixel_loop(seed, m, k):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(m, SIDE * SIDE), dtype=np.uint8)
    dy, dx = rng.integers(-k, k + 1, size=(2, m))
    flipped = rng.random(m) < 0.5
    out = translate(X, dy, dx, flipped)
    assert out.dtype == np.uint8 and out.shape == X.shape
    np.testing.assert_array_equal(out, reference_translate(X, dy, dx, flipped))


def test_known_shift_moves_a_single_pixel():
    X = np.zeros((3, SIDE * SIDE), dtype=np.uint8)
    X[:, 10 * SIDE + 5] = 200  # pixel (row 10, column 5)
    out = translate(X, np.array([2, -3, 0]), np.array([1, 0, 0]), np.array([False, False, True]))
    expected = [(12, 6), (7, 5), (10, SIDE - 1 - 5)]  # down 2 right 1; up 3; mirrored
    for i, (r, c) in enumerate(expected):
        assert np.flatnonzero(out[i]).tolist() == [r * SIDE + c]
        assert out[i, r * SIDE + c] == 200


def test_shift_pushes_ink_off_the_edge_and_fills_zeros():
    X = np.full((1, SIDE * SIDE), 7, dtype=np.uint8)
    out = translate(X, np.array([2]), np.array([-1]), np.array([False])).reshape(SIDE, SIDE)
    assert (out[:2] == 0).all() and (out[:, -1] == 0).all()  # uncovered border: zeros
    assert (out[2:, :-1] == 7).all()
    assert out.sum() == 7 * (SIDE - 2) * (SIDE - 1)  # the rows/column pushed off are gone


@pytest.mark.parametrize("shift, flip", [(1, False), (2, False), (3, True), (0, True)])
def test_pixel_mass_and_order_preserved_when_ink_stays_inside(shift, flip):
    rng = np.random.default_rng(1)
    X = images_with_border(64, shift, rng)
    out = augment(X, np.random.default_rng(2), Aug(shift=shift, flip=flip))
    # Every image keeps all of its ink (same sum, same multiset of pixel values) and stays in
    # its row, so its label y[i] still applies.
    np.testing.assert_array_equal(out.sum(axis=1, dtype=np.int64), X.sum(axis=1, dtype=np.int64))
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(X, axis=1))
    assert out.dtype == np.uint8


def test_shift_zero_without_flip_is_identity_and_draws_nothing():
    X = np.random.default_rng(0).integers(0, 256, (16, SIDE * SIDE), dtype=np.uint8)
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    assert augment(X, rng, Aug(shift=0)) is X
    assert rng.bit_generator.state == state


def test_flip_only_mirrors_about_half_the_images():
    rng = np.random.default_rng(3)
    X = images_with_border(400, 0, rng)
    out = augment(X, np.random.default_rng(4), Aug(shift=0, flip=True))
    same = (out == X).all(axis=1)
    mirrored = (out == X.reshape(-1, SIDE, SIDE)[:, :, ::-1].reshape(-1, SIDE * SIDE)).all(axis=1)
    assert (same ^ mirrored).all()  # each image is itself or its mirror image, nothing else
    assert 150 < mirrored.sum() < 250


def test_every_shift_in_range_occurs_and_none_beyond():
    k, m = 2, 2000
    X = np.zeros((m, SIDE * SIDE), dtype=np.uint8)
    X[:, 14 * SIDE + 14] = 1  # one pixel in the middle
    out = augment(X, np.random.default_rng(6), Aug(shift=k))
    r, c = np.divmod(out.argmax(axis=1), SIDE)
    assert (out.sum(axis=1) == 1).all()
    moves = set(zip((r - 14).tolist(), (c - 14).tolist()))
    assert moves == {(y, x) for y in range(-k, k + 1) for x in range(-k, k + 1)}


def test_same_seed_same_batch_other_seed_other_batch():
    X = np.random.default_rng(0).integers(0, 256, (32, SIDE * SIDE), dtype=np.uint8)
    a = augment(X, np.random.default_rng(9), Aug(shift=2, flip=True))
    b = augment(X, np.random.default_rng(9), Aug(shift=2, flip=True))
    c = augment(X, np.random.default_rng(10), Aug(shift=2, flip=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_input_batch_is_not_modified():
    X = np.random.default_rng(0).integers(0, 256, (8, SIDE * SIDE), dtype=np.uint8)
    before = X.copy()
    augment(X, np.random.default_rng(1), Aug(shift=2, flip=True))
    np.testing.assert_array_equal(X, before)


# --- in training runs -------------------------------------------------------------------------


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files if key != "meta"}


@pytest.mark.parametrize("distortions", [(), ("data.augment.rotate=15", "data.augment.scale=0.15",
                                               "data.augment.shear=10", "data.augment.elastic={alpha: 34, sigma: 4}"),
                                         ("data.augment.rotate=15", "data.augment.elastic={alpha: 34, sigma: 4}",
                                          "data.augment.clean_fraction=0.5")],
                         ids=["shift+flip", "every distortion", "distortions, the last 2 epochs clean"])
def test_resume_with_dropout_and_augmentation_is_bit_exact(tiny_config, tmp_path, distortions):
    """4 epochs in one go == 2 epochs, stop, resume for 2 more: same weights and optimizer
    state bit for bit, with dropout masks and shifted, flipped (and distorted) batches drawn
    all along."""
    from mlpcli.run import checkpoint
    from mlpcli.data.splits import read_splits
    from mlpcli.run.train import fit, start

    on = ("data.dataset=fashion-mnist", "data.augment.shift=2", "data.augment.flip=true",
          "model.layers=[784,16,12,10]", "model.dropout=[0.3,0.2]", "training.epochs=4",
          "training.optimizer=nesterov", *distortions)
    config = tiny_config(*on)
    splits = read_splits(config.data)
    whole = fit(config, splits, tmp_path / "whole")
    fit(config, splits, tmp_path / "split", stop_after=2)
    resumed = fit(start(None, resume=tmp_path / "split" / "last.npz"), splits)

    a, b = _arrays(whole.last_checkpoint), _arrays(resumed.last_checkpoint)
    assert a.keys() == b.keys() and any(k.startswith("opt_v_") for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rng_states = [checkpoint.load(h.last_checkpoint).meta["rng_state"] for h in (whole, resumed)]
    assert rng_states[0] == rng_states[1]
    drop_time = [{k: v for k, v in row.items() if k != "seconds"} for row in whole.epochs]
    assert drop_time == [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.epochs]

    # The check is not vacuous: without dropout and augmentation the weights differ.
    plain = fit(tiny_config("model.layers=[784,16,12,10]", "training.epochs=4",
                              "training.optimizer=nesterov"), splits, tmp_path / "plain")
    assert not np.array_equal(_arrays(plain.last_checkpoint)["W1"], a["W1"])


def test_the_clean_fraction_of_epochs_trains_on_the_undistorted_images(tiny_config, tmp_path):
    """data.augment.clean_fraction: the first epochs are those of the distorted run, bit for bit;
    the last ones are those of a run that was never distorted from there on — all clean equals
    augmentation off."""
    from mlpcli.data.splits import read_splits
    from mlpcli.run.train import fit

    on = ("data.augment.shift=2", "data.augment.rotate=15", "data.augment.elastic={alpha: 34, sigma: 4}")
    splits = read_splits(tiny_config(*on).data)
    distorted = fit(tiny_config(*on), splits, tmp_path / "distorted")
    last_clean = fit(tiny_config(*on, "data.augment.clean_fraction=0.34"), splits, tmp_path / "last-clean")
    all_clean = fit(tiny_config(*on, "data.augment.clean_fraction=1"), splits, tmp_path / "all-clean")
    never = fit(tiny_config(), splits, tmp_path / "never")

    def rows(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history.epochs]

    assert rows(last_clean)[:2] == rows(distorted)[:2]  # epochs 1–2 distorted, same draws
    assert rows(last_clean)[2] != rows(distorted)[2]  # epoch 3 is not
    assert rows(all_clean) == rows(never)
    np.testing.assert_array_equal(_arrays(all_clean.last_checkpoint)["W1"], _arrays(never.last_checkpoint)["W1"])


def test_flip_is_refused_for_digits(tiny_config):
    from mlpcli.errors import ConfigError

    with pytest.raises(ConfigError, match="flip"):
        tiny_config("data.dataset=mnist", "data.augment.flip=true")


# --- affine and elastic distortions -------------------------------------------------------------------


def test_a_zero_distortion_is_the_identity():
    X = np.random.default_rng(0).integers(0, 256, (5, SIDE * SIDE), dtype=np.uint8)
    A, t = np.tile(np.eye(2), (5, 1, 1)), np.zeros((5, 2))
    np.testing.assert_array_equal(warp(X, A, t), X)
    np.testing.assert_array_equal(warp(X, A, t, field=np.zeros((5, 2, SIDE, SIDE), np.float32)), X)
    # rotation by 0°, scale 1, shear 0 drawn through random_affine is the identity too
    A0, t0 = random_affine(5, np.random.default_rng(1), Aug(shift=0, rotate=0, scale=0, shear=0))
    np.testing.assert_array_equal(warp(X, A0, t0), X)


@pytest.mark.parametrize("dy, dx", [(2, 0), (0, -3), (1, 1)])
def test_a_pure_shift_moves_the_ink_by_that_many_pixels(dy, dx):
    X = images_with_border(4, 4, np.random.default_rng(2))
    A, t = np.tile(np.eye(2), (4, 1, 1)), np.tile([-dy, -dx], (4, 1)).astype(float)  # s = p − (dy, dx)
    out = warp(X, A, t)
    np.testing.assert_array_equal(out, translate(X, np.full(4, dy), np.full(4, dx), np.zeros(4, bool)))


def test_a_flip_through_warp_mirrors_like_translate():
    X = np.random.default_rng(3).integers(0, 256, (6, SIDE * SIDE), dtype=np.uint8)
    flipped = np.array([True, False] * 3)
    out = warp(X, np.tile(np.eye(2), (6, 1, 1)), np.zeros((6, 2)), flipped)
    np.testing.assert_array_equal(out, translate(X, np.zeros(6, int), np.zeros(6, int), flipped))


def test_rotation_by_90_degrees_turns_the_image():
    X = np.random.default_rng(4).integers(0, 256, (2, SIDE * SIDE), dtype=np.uint8)
    A = np.tile(np.array([[0.0, -1.0], [1.0, 0.0]]), (2, 1, 1))  # R(90°): s = (−c, r)
    out = warp(X, A, np.zeros((2, 2))).reshape(2, SIDE, SIDE)
    np.testing.assert_array_equal(out, np.rot90(X.reshape(2, SIDE, SIDE), k=-1, axes=(1, 2)))


def test_bilinear_halfway_between_two_pixels_is_their_mean():
    X = np.zeros((1, SIDE * SIDE), np.uint8)
    X[0, 10 * SIDE + 10], X[0, 10 * SIDE + 11] = 100, 200
    sy = np.full((1, 1), 10.0, np.float32)
    assert bilinear(X, sy, np.full((1, 1), 10.5, np.float32))[0, 0] == 150
    assert bilinear(X, sy, np.full((1, 1), 99.0, np.float32))[0, 0] == 0  # far outside: zero


def test_elastic_fields_have_the_statistics_of_their_sigma_and_alpha():
    sigma, alpha = 4.0, 34.0
    fields = elastic_field(2000, np.random.default_rng(5), alpha, sigma)
    assert fields.shape == (2000, 2, SIDE, SIDE) and fields.dtype == np.float32
    centre = fields[:, :, 10:18, 10:18]  # away from the zero border
    # U(−1, 1) has variance 1/3; a normalized 2-D Gaussian of σ keeps Σ g² = 1 / (4π σ²) of it
    expected_std = alpha * np.sqrt(1 / 3 / (4 * np.pi * sigma**2))
    assert abs(centre.std() / expected_std - 1) < 0.05
    assert abs(centre.mean()) < 0.05 * expected_std
    # smoothed white noise: the correlation of two pixels d apart is exp(−d² / 4σ²)
    for d, expected in ((1, np.exp(-1 / (4 * sigma**2))), (8, np.exp(-64 / (4 * sigma**2))), (20, 0.0)):
        got = np.corrcoef(fields[:, 0, 14, 4], fields[:, 0, 14, 4 + d])[0, 1]
        assert abs(got - expected) < 0.06, (d, got, expected)
    assert np.allclose(gaussian_matrix(sigma).sum(axis=1)[SIDE // 2], 1, atol=1e-3)


def test_distortions_are_reproducible_and_keep_most_of_the_ink():
    X = images_with_border(64, 6, np.random.default_rng(6))
    spec = Aug(shift=2, rotate=15, scale=0.15, shear=10, elastic=ElasticConfig(alpha=34, sigma=5))
    a = augment(X, np.random.default_rng(7), spec)
    b = augment(X, np.random.default_rng(7), spec)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == X.shape and not np.array_equal(a, X)
    ratio = a.sum(axis=1, dtype=np.int64) / X.sum(axis=1, dtype=np.int64)
    assert (0.4 < ratio).all() and (ratio < 2.0).all()  # ink is moved, scaled and resampled, not lost


def test_warp_reads_where_a_by_hand_affine_map_points():
    """warp's positions (one matrix product, in padded coordinates) against s = A p + t worked
    out per pixel here and read through bilinear (float64): equal up to float32 rounding."""
    rng = np.random.default_rng(8)
    X = rng.integers(0, 256, (40, SIDE * SIDE), dtype=np.uint8)
    A, t = random_affine(40, rng, Aug(shift=3, rotate=30, scale=0.3, shear=10))
    r, c = np.divmod(np.arange(SIDE * SIDE), SIDE)
    p = np.stack([r, c]) - (SIDE - 1) / 2  # (2, 784), from the centre
    s = np.einsum("mij,jk->mik", A, p) + t[:, :, None] + (SIDE - 1) / 2
    expected = bilinear(X, s[:, 0], s[:, 1]).astype(int)
    got = warp(X, A, t).astype(int)
    assert np.abs(got - expected).max() <= 1 and (got == expected).mean() > 0.99


def test_every_image_of_a_chunk_gets_its_own_elastic_field():
    """The fields are drawn block by block: no block may reuse another's draws."""
    X = np.tile(images_with_border(1, 6, np.random.default_rng(9)), (2 * BLOCK + 5, 1))
    out = augment(X, np.random.default_rng(10), Aug(elastic=ElasticConfig(alpha=34, sigma=4)))
    assert len(np.unique(out, axis=0)) == len(X)
