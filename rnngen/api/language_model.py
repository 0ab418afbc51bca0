"""A loaded checkpoint as an object: `load` and `LanguageModel` (generate, score, scores,
gradients, neighbors).

lm = load("checkpoints/synth.safetensors")       # LanguageModel, device="auto"
"".join(lm.generate("the man", max_tokens=50, seed=1))
lm.score(["a line", "another"])                   # [LineScore(text, tokens, logprob, ppl)]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rnngen.api.sampling import Sampling
from rnngen.arguments import checked
from rnngen.corpus.provenance import Provenance, checkpoint_provenance
from rnngen.sampling.generate import Piece
from rnngen.scoring.lines import LineScore, line_scorer

# The CLI options the sampling checks name, as the API's keywords.
SAMPLE_OPTIONS = {"--temp": "temperature", "--length": "max_tokens", "--chars": "max_chars",
                  "--num-samples": "n"}  # fmt: skip

if TYPE_CHECKING:
    from rnngen.scoring.dynamic import DynamicConfig


class LanguageModel:
    """A loaded checkpoint: the RNN, its tokenizer, and what it was trained on."""

    def __init__(self, path: Path, model, tokenizer, meta: dict[str, str], device):
        self.path, self.model, self.tokenizer, self.meta = path, model, tokenizer, meta
        self.device = device  # a torch.device

    @property
    def config(self):
        """The ModelConfig (cell, layers, hidden_size, vocab_size, ...)."""
        return self.model.config

    @property
    def provenance(self) -> Provenance | None:
        """What it was trained on; None for a checkpoint that records nothing."""
        return checkpoint_provenance(self.meta, required=False)

    def __repr__(self) -> str:
        c = self.config
        return f"LanguageModel({str(self.path)!r}, {c.layers}x{c.cell} {c.hidden_size})"

    @checked(rename=SAMPLE_OPTIONS)
    def sample(
        self,
        prompt: str = "",
        *,
        n: int = 1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        max_chars: int | None = None,
        seed: int | None = None,
        stop: str | Iterable[str] = (),
        precision: str = "auto",
        threads: int | str | None = None,
        ngram: bool = False,
        ngram_order: int = 5,
        ngram_memory: int | str | None = None,
        mix: float | str | None = None,
    ) -> Sampling:
        """What `rnngen sample` does, with its defaults: n samples continuing `prompt` (not
        repeated), as one batch. Returns a Sampling (its seed, precision, ...): iterate it for
        Piece(index, text) and, when sample `index` ends, Done(index, text, tokens, reason,
        dropped_bytes, seed). temperature 0 is greedy; sample i draws from seed + i (None: a
        random seed). max_tokens None: 500, or with max_chars what those characters need.
        precision "auto": fp32 when greedy, else bf16 on CPUs with native bf16 (fp32
        elsewhere), as the command and the server choose it, so that a seed gives the same
        text from each on the same machine. ngram / mix: sample the Kneser-Ney n-gram of the
        checkpoint's training tokens, alone or mixed in ("fit" or λ). Arguments are checked
        and the n-gram built at the call."""
        from rnngen.api.sampling import sample

        return sample(self, prompt, n=n, temperature=temperature, top_k=top_k, top_p=top_p,
                      max_tokens=max_tokens, max_chars=max_chars, seed=seed, stop=stop,
                      precision=precision, threads=threads, ngram=ngram,
                      ngram_order=ngram_order, ngram_memory=ngram_memory, mix=mix)  # fmt: skip

    @checked(rename=SAMPLE_OPTIONS)
    def generate(
        self,
        prompt: str = "",
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        max_chars: int | None = None,
        seed: int | None = None,
        stop: str | Iterable[str] = (),
        precision: str = "auto",
        threads: int | str | None = None,
        ngram: bool = False,
        ngram_order: int = 5,
        ngram_memory: int | str | None = None,
        mix: float | str | None = None,
    ) -> Iterator[str]:
        """One sample's text pieces as they are sampled (`sample` with n=1, same options and
        defaults): "".join(lm.generate(...)) is its text. Arguments are checked at the call,
        before the first piece."""
        from rnngen.api.sampling import sample

        sampling = sample(self, prompt, temperature=temperature, top_k=top_k, top_p=top_p,
                          max_tokens=max_tokens, max_chars=max_chars, seed=seed, stop=stop,
                          precision=precision, threads=threads, ngram=ngram,
                          ngram_order=ngram_order, ngram_memory=ngram_memory,
                          mix=mix)  # fmt: skip
        return (event.text for event in sampling if isinstance(event, Piece))

    @checked()
    def neighbors(self, words: Iterable[str], k: int = 10) -> list:
        """The k nearest pieces of each word in the input embedding (rnngen.word_vectors):
        [WordNeighbors(word, pieces, averaged, neighbors=[Neighbor(piece, id, similarity)])]."""
        from rnngen.word_vectors import nearest

        return nearest(self.model.embedding.weight, self.tokenizer, list(words), k)

    @checked()
    def scores(
        self,
        lines,
        *,
        ngram: bool = False,
        ngram_order: int = 5,
        ngram_memory: int | str | None = None,
        mix: float | str | None = None,
        dynamic: DynamicConfig | bool | None = None,
        train: str | Path | None = None,
        complete_lines: bool = True,
    ) -> Iterator[LineScore]:
        """Each line's LineScore as `rnngen score` gives it, streamed: a line in, a score out
        (`lines` may be any iterable of str, read as it goes). Each line is scored as a line
        of its own, after a line end, its newline included: added to a line that has none
        unless `complete_lines` is False (then scored exactly as given, as `rnngen score`
        scores a file's last line). With `ngram` the checkpoint's n-gram of `ngram_order`
        alone; with `mix` ("fit" or the n-gram's weight in [0, 1]) the RNN + n-gram
        mixture; with `dynamic` (a DynamicConfig, or True for its defaults) the RNN adapting
        from line to line. `train` names the n-gram's training text if the corpus moved.
        Everything is checked, and the n-gram built, at the call, before the first line."""
        from rnngen.scoring.baseline import memory_budget
        from rnngen.scoring.dynamic import dynamic_config
        from rnngen.scoring.lines import checked_lines, line_options, scoring_function

        mix, dynamic = line_options(ngram, mix, dynamic_config(dynamic))
        line_score = scoring_function(
            self.model, self.tokenizer, self.provenance, self.device, ngram=ngram,
            order=ngram_order, mix=mix, dynamic=dynamic, memory=memory_budget(ngram_memory),
            train=Path(train) if train is not None else None,
        )  # fmt: skip
        return _scored(checked_lines(lines), line_score, complete_lines)

    @checked()
    def score(
        self,
        lines: Iterable[str],
        *,
        ngram: bool = False,
        ngram_order: int = 5,
        ngram_memory: int | str | None = None,
        mix: float | str | None = None,
        dynamic: DynamicConfig | bool | None = None,
        train: str | Path | None = None,
        complete_lines: bool = True,
    ) -> list[LineScore]:
        """`scores` as a list. `lines` is a list (any iterable) of str: one string alone is
        refused rather than scored character by character."""
        return list(self.scores(lines, ngram=ngram, ngram_order=ngram_order,
                                ngram_memory=ngram_memory, mix=mix, dynamic=dynamic,
                                train=train, complete_lines=complete_lines))  # fmt: skip

    @checked(rename={"-k": "max_lag"})
    def gradients(
        self,
        data: str | Path | None = None,
        *,
        max_lag: int = 200,
        positions: int = 256,
        batch_size: int = 64,
    ):
        """How much a prediction depends on the input and the hidden state k = 0..max_lag
        tokens back, averaged over `positions` targets of `data` (default: the held-out
        split), as `rnngen gradients` measures it: a GradientResult(path, label, source,
        tokens, seconds, flow)."""
        from rnngen.scoring.gradients import check_options, measure

        check_options(max_lag, positions, batch_size)
        return measure(self.path, self.model, self.tokenizer, self.provenance, self.device,
                       Path(data) if data is not None else None, max_lag, positions,
                       batch_size)  # fmt: skip


def _scored(lines: Iterator[str], line_score, complete_lines: bool) -> Iterator[LineScore]:
    for line in lines:
        yield line_score(line if line.endswith("\n") or not complete_lines else line + "\n")


def score_line(model, tokenizer, device, line: str) -> LineScore:
    """`line` exactly as given (newline and all), scored after a line end."""
    return line_scorer(tokenizer, device, model)(line)


@checked()
def load(path: str | Path | None = None, device: str = "auto") -> LanguageModel:
    """A checkpoint (the newest in ./checkpoints when none is named) on cpu, cuda or mps."""
    return load_checkpoint(path, device)


def load_checkpoint(path: str | Path | None = None, device: str = "auto") -> LanguageModel:
    """`load` without the API's argument checks: for the CLI, whose errors name its
    options (--device)."""
    from rnngen.checkpoint import latest_checkpoint, load_model
    from rnngen.hardware import resolve_device

    path = Path(path) if path is not None else latest_checkpoint()
    torch_device = resolve_device(device)
    model, tokenizer, meta = load_model(path, torch_device)
    return LanguageModel(path, model, tokenizer, meta, torch_device)
