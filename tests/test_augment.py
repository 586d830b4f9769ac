"""Training-time augmentation: random shifts (zero fill) and horizontal flips of uint8 batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpcli.augment import SIDE, augment, translate


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
    out = augment(X, np.random.default_rng(2), shift, flip)
    # Every image keeps all of its ink (same sum, same multiset of pixel values) and stays in
    # its row, so its label y[i] still applies.
    np.testing.assert_array_equal(out.sum(axis=1, dtype=np.int64), X.sum(axis=1, dtype=np.int64))
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(X, axis=1))
    assert out.dtype == np.uint8


def test_shift_zero_without_flip_is_identity_and_draws_nothing():
    X = np.random.default_rng(0).integers(0, 256, (16, SIDE * SIDE), dtype=np.uint8)
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    assert augment(X, rng, 0, False) is X
    assert rng.bit_generator.state == state


def test_flip_only_mirrors_about_half_the_images():
    rng = np.random.default_rng(3)
    X = images_with_border(400, 0, rng)
    out = augment(X, np.random.default_rng(4), shift=0, flip=True)
    same = (out == X).all(axis=1)
    mirrored = (out == X.reshape(-1, SIDE, SIDE)[:, :, ::-1].reshape(-1, SIDE * SIDE)).all(axis=1)
    assert (same ^ mirrored).all()  # each image is itself or its mirror image, nothing else
    assert 150 < mirrored.sum() < 250


def test_every_shift_in_range_occurs_and_none_beyond():
    k, m = 2, 2000
    X = np.zeros((m, SIDE * SIDE), dtype=np.uint8)
    X[:, 14 * SIDE + 14] = 1  # one pixel in the middle
    out = augment(X, np.random.default_rng(6), shift=k)
    r, c = np.divmod(out.argmax(axis=1), SIDE)
    assert (out.sum(axis=1) == 1).all()
    moves = set(zip((r - 14).tolist(), (c - 14).tolist()))
    assert moves == {(y, x) for y in range(-k, k + 1) for x in range(-k, k + 1)}


def test_same_seed_same_batch_other_seed_other_batch():
    X = np.random.default_rng(0).integers(0, 256, (32, SIDE * SIDE), dtype=np.uint8)
    a = augment(X, np.random.default_rng(9), 2, True)
    b = augment(X, np.random.default_rng(9), 2, True)
    c = augment(X, np.random.default_rng(10), 2, True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_input_batch_is_not_modified():
    X = np.random.default_rng(0).integers(0, 256, (8, SIDE * SIDE), dtype=np.uint8)
    before = X.copy()
    augment(X, np.random.default_rng(1), 2, True)
    np.testing.assert_array_equal(X, before)


# --- in training runs -------------------------------------------------------------------------


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files if key != "meta"}


def test_resume_with_dropout_and_augmentation_is_bit_exact(tiny_config, tmp_path):
    """4 epochs in one go == 2 epochs, stop, resume for 2 more: same weights and optimizer
    state bit for bit, with dropout masks and shifted, flipped batches drawn all along."""
    from mlpcli import checkpoint
    from mlpcli.data import load_splits
    from mlpcli.train import fit, start

    on = ("data.dataset=fashion-mnist", "data.augment.shift=2", "data.augment.flip=true",
          "model.layers=[784,16,12,10]", "model.dropout=[0.3,0.2]", "training.epochs=4",
          "training.optimizer=nesterov")
    config = tiny_config(*on)
    splits = load_splits(config.data)
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


def test_flip_is_refused_for_digits(tiny_config):
    from mlpcli.errors import ConfigError

    with pytest.raises(ConfigError, match="flip"):
        tiny_config("data.dataset=mnist", "data.augment.flip=true")
