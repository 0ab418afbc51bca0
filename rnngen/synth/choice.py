"""Random decisions that can be both sampled and replayed, for the synthetic corpus.

The grammar (rnngen/synth/grammar.py) is written once against a *chooser*:

- `pick(table)` emits one of the table's word sequences and returns that option's value;
- `branch(arms)` takes a structural decision that emits nothing and returns the arm's label;
- `emit(word)` writes a word that has no alternative (probability 1);
- `agree(verb, head_position)` notes a verb whose number its subject fixes.

A `Sampler` draws every decision from its probabilities. A `Replayer` reads an existing line
and, at each decision, takes the option that the upcoming words show, adding up -ln p. Since
both run the same rules, a replay retraces the sampled derivation, and the exact probability of
a line comes from its text alone.

The replay is unambiguous when the grammar is LL(1): within a table the options are
prefix-free and an empty option is taken only when no other matches; a branch's arms begin with
disjoint sets of words (at most one arm, the default, has no set); and whatever follows an empty
option or a default arm never begins like one of its alternatives. `Table` and `Branch` check
the first two when built; tests check the rest by replaying many sampled lines.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol


class NoParse(Exception):
    """The text left the grammar: no option of a decision matches the upcoming words."""


def _cumulative(weights: Sequence[float]) -> tuple[list[float], list[float], float]:
    """Cumulative probabilities (last exactly 1), -ln p of each, and the entropy in nats."""
    if not weights or min(weights) <= 0:
        raise ValueError("a decision needs at least one option, each with a positive weight")
    total = sum(weights)
    probs = [w / total for w in weights]
    cum, acc = [], 0.0
    for p in probs:
        acc += p
        cum.append(acc)
    cum[-1] = 1.0  # random() < 1, so bisect never runs past the last option
    costs = [-math.log(p) for p in probs]
    return cum, costs, sum(p * c for p, c in zip(probs, costs, strict=True))


class Table:
    """A decision between word sequences; options are (words, value, weight) triples."""

    __slots__ = ("words", "values", "cum", "costs", "entropy", "by_first", "empty")

    def __init__(self, options: Iterable[tuple[tuple[str, ...], Any, float]]):
        rows = list(options)
        self.words = tuple(words for words, _, _ in rows)
        self.values = tuple(value for _, value, _ in rows)
        self.cum, self.costs, self.entropy = _cumulative([w for _, _, w in rows])
        self.by_first: dict[str, tuple[int, ...]] = {}
        self.empty = None
        for i, words in enumerate(self.words):
            if not words:
                if self.empty is not None:
                    raise ValueError("a table has two empty options")
                self.empty = i
                continue
            for j in self.by_first.get(words[0], ()):
                other = self.words[j]
                if words[: len(other)] == other or other[: len(words)] == words:
                    raise ValueError(f"options {words} and {other} are not prefix-free")
            self.by_first[words[0]] = (*self.by_first.get(words[0], ()), i)

    def first_words(self) -> frozenset[str]:
        """The words that can begin a non-empty option (an arm's set in a `Branch`)."""
        return frozenset(self.by_first)


class Branch:
    """A structural decision, recognised by the next word: arms are (label, first words, weight).

    An arm whose first words are None is the default, taken in a replay when the next word
    begins no other arm (it is what follows the decision when nothing optional was added).
    Choosers return the arm's label.
    """

    __slots__ = ("labels", "cum", "costs", "entropy", "arm_of", "default")

    def __init__(self, arms: Sequence[tuple[str, Iterable[str] | None, float]]):
        self.labels = tuple(label for label, _, _ in arms)
        self.cum, self.costs, self.entropy = _cumulative([w for _, _, w in arms])
        self.arm_of: dict[str, int] = {}
        self.default = None
        for i, (_, first, _) in enumerate(arms):
            if first is None:
                if self.default is not None:
                    raise ValueError("a branch has two default arms")
                self.default = i
                continue
            for word in first:
                if self.arm_of.setdefault(word, i) != i:
                    raise ValueError(f"two arms of a branch begin with {word!r}")


class Chooser(Protocol):
    """What the grammar's rules call; a `Sampler` or a `Replayer`."""

    position: int  # index of the next word of the line

    def pick(self, table: Table) -> Any: ...
    def branch(self, branch: Branch) -> str: ...
    def emit(self, word: str) -> None: ...
    def agree(self, verb: tuple[str, str], head_position: int) -> None: ...


class Sampler:
    """Draws each decision at random; collects the line's words, -ln p and agreement notes.

    `expected_nats` adds up the entropy of every decision taken: its mean over lines equals
    the mean of `nats` (both are the entropy of the process), with a smaller variance.
    """

    def __init__(self, draw: Callable[[], float]):
        self.draw = draw  # uniform in [0, 1), e.g. random.Random(seed).random
        self.tokens: list[str] = []
        self.nats = 0.0
        self.expected_nats = 0.0
        self.agreements: list[tuple[int, str, str, int]] = []
        self.trace: list[int] = []

    @property
    def position(self) -> int:
        """Index of the next word of the line."""
        return len(self.tokens)

    def pick(self, table: Table) -> Any:
        i = bisect_right(table.cum, self.draw())
        self.nats += table.costs[i]
        self.expected_nats += table.entropy
        self.tokens.extend(table.words[i])
        self.trace.append(i)
        return table.values[i]

    def branch(self, branch: Branch) -> str:
        i = bisect_right(branch.cum, self.draw())
        self.nats += branch.costs[i]
        self.expected_nats += branch.entropy
        self.trace.append(i)
        return branch.labels[i]

    def emit(self, word: str) -> None:
        self.tokens.append(word)

    def agree(self, verb: tuple[str, str], head_position: int) -> None:
        """Note the word just emitted, form verb[0] (verb[1] is the wrong number)."""
        position = len(self.tokens) - 1
        self.agreements.append((position, verb[0], verb[1], position - head_position))


class Replayer:
    """Retraces the decisions that produced `tokens`; raises NoParse where none could have."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.position = 0
        self.nats = 0.0
        self.agreements: list[tuple[int, str, str, int]] = []
        self.trace: list[int] = []

    def _next_word(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def pick(self, table: Table) -> Any:
        tokens, start = self.tokens, self.position
        for i in table.by_first.get(self._next_word(), ()):
            words = table.words[i]
            if len(words) == 1 or tuple(tokens[start : start + len(words)]) == words:
                break
        else:
            i = table.empty
            if i is None:
                raise NoParse
        self.position = start + len(table.words[i])
        self.nats += table.costs[i]
        self.trace.append(i)
        return table.values[i]

    def branch(self, branch: Branch) -> str:
        i = branch.arm_of.get(self._next_word(), branch.default)
        if i is None:
            raise NoParse
        self.nats += branch.costs[i]
        self.trace.append(i)
        return branch.labels[i]

    def emit(self, word: str) -> None:
        if self._next_word() != word:
            raise NoParse
        self.position += 1

    def agree(self, verb: tuple[str, str], head_position: int) -> None:
        position = self.position - 1
        self.agreements.append((position, verb[0], verb[1], position - head_position))

    def finished(self) -> bool:
        """Whether the whole line was read (a line with extra words is not the grammar's)."""
        return self.position == len(self.tokens)
