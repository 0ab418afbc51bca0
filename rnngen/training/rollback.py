"""The Trainer's rollback: it keeps the last good state and returns to it, with half the
learning rate, when a step's loss or gradient norm is not finite or the loss explodes far
above its recent average, instead of aborting the run.

`Rollbacks` is a base of loop.py's Trainer (whose model, optimizer, counters and weight
average it reads and sets), as resume.py's `Resumable` is: `_snapshot` is the good state
(taken at the start and after every finite evaluation), `_exploded` spots a blow-up and
`_roll_back` returns to the snapshot, up to MAX_ROLLBACKS times before the run gives up.
"""

from __future__ import annotations

import copy

from rnngen.errors import RnngenError
from rnngen.model import detach_state
from rnngen.training.events import Rollback

MAX_ROLLBACKS = 8


class Rollbacks:
    """The Trainer's last good state and the return to it (a base of loop.py's Trainer)."""

    def _snapshot(self) -> dict:
        average = None if self.average is None else copy.deepcopy(self.average.state_dict())
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "average": average,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "hidden": detach_state(self.hidden),
            "counters": (self.step, self.epoch, self.position, self.elapsed, self.next_eval),
        }

    def _exploded(self, loss: float) -> bool:
        """A loss far above the recent average (after a few steps to learn that average)."""
        average = self._loss_average
        if average is None or self.step < 20:
            self._loss_average = loss if average is None else 0.9 * average + 0.1 * loss
            return False
        if loss > 3 * average + 1:
            return True
        self._loss_average = 0.9 * average + 0.1 * loss
        return False

    def _roll_back(self, reason: str) -> Rollback:
        """Return to the last good state with half the learning rate, instead of aborting."""
        self.rollbacks += 1
        if self.rollbacks > MAX_ROLLBACKS:
            raise RnngenError(
                f"training diverged {MAX_ROLLBACKS} times even after lowering the learning "
                f"rate ({reason}); try a smaller --lr or --clip"
            )
        good = self._good
        self.model.load_state_dict(good["model"])
        self.average = None
        if good["average"] is not None:
            self._start_average(good["average"])
        self.optimizer.load_state_dict(good["optimizer"])
        self.hidden = detach_state(good["hidden"])
        elapsed = self.elapsed
        self.step, self.epoch, self.position, _, self.next_eval = good["counters"]
        self.elapsed = elapsed  # time spent is spent: a budget still ends on time
        self.lr_scale *= 0.5
        self.optimizer.zero_grad(set_to_none=True)
        return Rollback(self.step, reason, self.lr_scale)
