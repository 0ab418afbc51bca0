"""The adaptive softmax (Grave et al. 2017): a cheap output layer for large vocabularies.

With a word or large-BPE vocabulary the full softmax is most of a small RNN's work: every
token multiplies the top hidden vector by all V output vectors. The adaptive softmax sorts
tokens by frequency and puts the frequent ones (the "shortlist", most of the text) in a head
softmax, together with one entry per tail cluster; a rare token's probability is its
cluster's head probability times its probability within the cluster, whose softmax works on
a projection 4x narrower per cluster. Training then only runs a cluster for the targets
that fall in it. The result is still an exact, normalized distribution over the whole
vocabulary, so eval's rows stay comparable with the n-gram's.

The parameters are `torch.nn.AdaptiveLogSoftmaxWithLoss`'s (head, tail); the two scoring
functions here follow its maths but keep the log-probabilities in fp32 under bf16 autocast
(the module writes them into a tensor of the input's dtype), and map between token ids and
frequency ranks. With tying, the head's shortlist rows are the embedding rows of the
shortlisted tokens; the tail clusters work on narrower projections and cannot be tied.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnngen.errors import RnngenError

DIV_VALUE = 4.0  # each tail cluster's projection is 4x narrower than the previous one
# The head must hold at least this share of the training tokens: a smaller head is cheaper
# but sends more targets through the narrow, less accurate tail projections.
HEAD_MASS = 0.8


def frequency_order(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Token ids from the most frequent to the least (ties by id): rank -> id, (V,) int64."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return np.argsort(-counts, kind="stable").astype(np.int64)


def choose_cutoffs(ids: np.ndarray, vocab_size: int, width: int) -> tuple[int, ...]:
    """Cluster boundaries (frequency ranks) for a softmax over `width`-wide vectors.

    Minimizes the expected multiply-adds per target token, counted from the training
    text's frequencies: width x (shortlist + clusters) for the head, plus, for the share of
    targets in each tail cluster, its projection and its own softmax. The shortlist is a
    power of two holding at least HEAD_MASS of the tokens; the tail is one cluster or two
    split at a power of two.
    """
    order = frequency_order(ids, vocab_size)
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[order]
    mass = np.cumsum(counts) / max(counts.sum(), 1)  # (V,): share of tokens in ranks <= r

    def share(low: int, high: int) -> float:
        return float(mass[high - 1] - (mass[low - 1] if low else 0.0))

    def cost(cutoffs: tuple[int, ...]) -> float:
        bounds = (*cutoffs, vocab_size)
        total = width * (cutoffs[0] + len(cutoffs))
        for i in range(len(cutoffs)):
            projection = max(int(width // DIV_VALUE ** (i + 1)), 1)
            size = bounds[i + 1] - bounds[i]
            total += share(bounds[i], bounds[i + 1]) * projection * (width + size)
        return total

    powers = [2**k for k in range(4, 40) if 2**k < vocab_size]
    heads = [s for s in powers if mass[s - 1] >= HEAD_MASS] or powers[-1:]
    candidates = [(s,) for s in heads] + [(s, t) for s in heads for t in powers if t > s]
    return min(candidates, key=cost)


class TiedHead(nn.Module):
    """The head's linear layer with its shortlist rows taken from the embedding.

    It owns only the cluster rows and the bias; the embedding stays the one tensor the state
    dict holds, so a checkpoint never contains aliased weights."""

    def __init__(self, softmax: AdaptiveSoftmax, in_features: int, clusters: int, shortlist: int):
        super().__init__()
        self._owner = [softmax]  # a list: not registered as a submodule (no cycle)
        self.shortlist = shortlist
        self.cluster_weight = nn.Parameter(torch.empty(clusters, in_features))
        self.bias = nn.Parameter(torch.zeros(shortlist + clusters))
        nn.init.normal_(self.cluster_weight, std=in_features**-0.5)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        softmax = self._owner[0]
        rows = softmax.embedding[0].weight[softmax.ids_by_rank[: self.shortlist]]  # (S, D)
        weight = torch.cat([rows, self.cluster_weight])  # (S + K, D)
        return F.linear(hidden, weight, self.bias)  # (N, S + K)


class AdaptiveSoftmax(nn.Module):
    def __init__(
        self,
        in_features: int,
        vocab_size: int,
        cutoffs: tuple[int, ...],
        embedding: nn.Embedding | None = None,
    ):
        super().__init__()
        self.body = nn.AdaptiveLogSoftmaxWithLoss(
            in_features, vocab_size, list(cutoffs), div_value=DIV_VALUE, head_bias=True
        )
        self.shortlist, self.clusters = self.body.shortlist_size, self.body.n_clusters
        # rank -> id; set from the training text's frequencies (frequency_order) before
        # training, and saved with the weights so every later command ranks the same way.
        self.register_buffer("ids_by_rank", torch.arange(vocab_size))
        self.embedding = [embedding] if embedding is not None else None
        if embedding is not None:
            self.body.head = TiedHead(self, in_features, self.clusters, self.shortlist)

    def set_order(self, ids_by_rank: np.ndarray) -> None:
        self.ids_by_rank.copy_(torch.from_numpy(np.asarray(ids_by_rank, dtype=np.int64)))

    def ranks(self) -> torch.Tensor:
        """id -> rank, (V,)."""
        ids = self.ids_by_rank
        ranks = torch.empty_like(ids)
        ranks[ids] = torch.arange(len(ids), device=ids.device)
        return ranks

    def target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """hidden (..., D), target ids (...) -> ln p(target) (...), fp32.

        Each tail cluster runs only on the rows whose target it holds: the saving. A cluster
        with no such rows still runs (on none), so every parameter takes part in every step,
        as DistributedDataParallel requires."""
        shape = targets.shape
        hidden = hidden.reshape(-1, hidden.shape[-1])  # (N, D)
        target = self.ranks()[targets.reshape(-1)]  # (N,) ranks
        head = F.log_softmax(self.body.head(hidden).float(), dim=-1)  # (N, S + K)
        in_head = target < self.shortlist
        out = head.gather(1, torch.where(in_head, target, 0).unsqueeze(1)).squeeze(1)  # (N,)
        bounds = self.body.cutoffs  # [S, ..., V]
        for i in range(self.clusters):
            low, high = bounds[i], bounds[i + 1]
            rows = ((target >= low) & (target < high)).nonzero().squeeze(1)  # (n,)
            cluster = F.log_softmax(self.body.tail[i](hidden[rows]).float(), dim=-1)  # (n, C)
            inside = cluster.gather(1, (target[rows] - low).unsqueeze(1)).squeeze(1)  # (n,)
            out = out.index_copy(0, rows, head[rows, self.shortlist + i] + inside)
        return out.reshape(shape)

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., D) -> ln p of every token (..., V), in id order, fp32."""
        shape = hidden.shape[:-1]
        hidden = hidden.reshape(-1, hidden.shape[-1])  # (N, D)
        head = F.log_softmax(self.body.head(hidden).float(), dim=-1)  # (N, S + K)
        parts = [head[:, : self.shortlist]]
        for i in range(self.clusters):
            cluster = F.log_softmax(self.body.tail[i](hidden).float(), dim=-1)  # (N, C)
            parts.append(cluster + head[:, self.shortlist + i].unsqueeze(1))
        by_rank = torch.cat(parts, dim=1)  # (N, V)
        return by_rank.index_select(1, self.ranks()).reshape(*shape, -1)  # (..., V)


# `--softmax auto` picks the adaptive softmax from this vocabulary size up (measured in
# benchmarks/bench_adaptive.py: the vocabulary where it starts to pay at equal wall time).
ADAPTIVE_FROM_VOCAB = 4096
SMALLEST_ADAPTIVE_VOCAB = 32


def output_layer(softmax: str, train_ids: np.ndarray, vocab_size: int, width: int) -> dict:
    """The ModelConfig fields of the output layer (`softmax`, `cutoffs`) for --softmax
    auto|full|adaptive, the cut-offs chosen from the training text's frequencies."""
    if softmax == "auto":
        softmax = "adaptive" if vocab_size >= ADAPTIVE_FROM_VOCAB else "full"
    if softmax == "full":
        return {"softmax": "full", "cutoffs": ()}
    if vocab_size < SMALLEST_ADAPTIVE_VOCAB:
        raise RnngenError(
            f"--softmax adaptive needs a vocabulary of {SMALLEST_ADAPTIVE_VOCAB} or more "
            f"tokens; this one has {vocab_size}: use --softmax full"
        )
    return {"softmax": "adaptive", "cutoffs": choose_cutoffs(train_ids, vocab_size, width)}


def describe(config) -> str:
    """The output layer in words, for the run's log: what is tied and what cannot be."""
    if config.softmax == "full":
        return "full softmax" + (" (tied)" if config.tie else "")
    bounds = (*config.cutoffs, config.vocab_size)
    clusters = ", ".join(f"{bounds[i]}-{bounds[i + 1]}" for i in range(len(bounds) - 1))
    head = f"head {config.cutoffs[0]} + {len(config.cutoffs)} clusters"
    if config.tie:
        return (
            f"adaptive softmax, {head} (tied to the embedding; the tail clusters {clusters} untied)"
        )
    return f"adaptive softmax, {head} (clusters {clusters})"


def is_permutation(ids: torch.Tensor) -> bool:
    """Whether `ids` (V,) holds each of 0..V-1 once (an adaptive softmax's rank -> id)."""
    return bool(torch.equal(ids.sort().values, torch.arange(len(ids), dtype=ids.dtype)))
