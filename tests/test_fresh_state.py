"""Streams start from a zero state regularly in training, as eval and sampling always do."""

from __future__ import annotations

import numpy as np
import torch

from rnngen.config import ModelConfig, TrainConfig
from rnngen.model import RNNLM, reset_rows
from rnngen.training.loop import Trainer
from rnngen.training.schedule import FRESH_STATE_EVERY

CPU = torch.device("cpu")


def test_reset_rows_zeroes_only_those_rows_and_copies():
    h, c = torch.ones(1, 4, 3), torch.full((1, 4, 3), 2.0)
    lstm = reset_rows([(h, c)], [1, 3])
    assert lstm[0][0][0, :, 0].tolist() == [1, 0, 1, 0]
    assert lstm[0][1][0, :, 0].tolist() == [2, 0, 2, 0]
    assert h.eq(1).all() and c.eq(2).all()  # the input state is untouched
    gru = reset_rows([h], [0])
    assert gru[0][0, :, 0].tolist() == [0, 1, 1, 1]
    assert reset_rows(None, [0]) is None and reset_rows([h], []) == [h]


def test_each_stream_starts_fresh_once_every_period():
    ids = np.random.default_rng(0).integers(0, 20, 5000).astype(np.uint16)
    model = RNNLM(ModelConfig(vocab_size=20, hidden_size=8, embed_size=8))
    config = TrainConfig(batch_size=8, seq_len=8, max_steps=100)
    trainer = Trainer(model, ids, ids[:200], config, CPU, "fp32")
    seen = {row: 0 for row in range(8)}
    for step in range(FRESH_STATE_EVERY):
        trainer.step = step
        rows = trainer._fresh_rows()
        assert len(rows) <= 1  # staggered: at most one stream a window here
        for row in rows:
            seen[row] += 1
    assert set(seen.values()) == {1}


def test_a_trained_state_row_is_zero_after_its_turn():
    ids = np.random.default_rng(1).integers(0, 20, 5000).astype(np.uint16)
    model = RNNLM(ModelConfig(vocab_size=20, hidden_size=8, embed_size=8, cell="gru"))
    config = TrainConfig(batch_size=4, seq_len=8, max_steps=FRESH_STATE_EVERY - 3)
    trainer = Trainer(model, ids, ids[:200], config, CPU, "fp32")
    for _ in trainer.run():
        pass
    # after FRESH_STATE_EVERY - 3 windows, stream 3 is due: (step + row) % period == 0
    hidden = trainer.hidden[0]  # (1, B, H)
    assert hidden[0, 3].abs().sum() == 0 and hidden[0, :3].abs().sum() > 0
