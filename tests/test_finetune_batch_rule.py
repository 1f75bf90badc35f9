"""Fine-tuning on tiny datasets: one batch-size rule, one message, never a contradiction."""

from __future__ import annotations

import logging

import pytest

from mgfm.eval.finetune import fit_batch_size


def test_batch_size_fits_the_clips_with_one_message(caplog):
    with caplog.at_level(logging.WARNING, logger="mgfm.eval.finetune"):
        assert fit_batch_size(64, 200, "finetune") == 64
        assert not caplog.records
        assert fit_batch_size(64, 7, "finetune") == 6
        assert fit_batch_size(64, 2, "finetune") == 2
    assert [r.getMessage() for r in caplog.records] == [
        "eval.finetune.train.batch_size 64 is more than the 7 training clips of finetune: training with batch size "
        "6 (the clip count, even)",
        "eval.finetune.train.batch_size 64 is more than the 2 training clips of finetune: training with batch size "
        "2 (the clip count, even)"]


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_clips_is_one_clear_error(n, caplog):
    """One error before training, never a 'training with batch size 2' warning followed by a failure."""
    with caplog.at_level(logging.WARNING, logger="mgfm.eval.finetune"):
        with pytest.raises(ValueError, match=f"semi_supervised: only {n} training clip.s. left .*at least 2"):
            fit_batch_size(64, n, "semi_supervised")
    assert not caplog.records


def test_every_batch_size_chosen_fills_one_step():
    for n in range(2, 40):
        for configured in (2, 3, 8, 64):
            bs = fit_batch_size(configured, n, "finetune")
            assert 2 <= bs <= n and n // bs >= 1
