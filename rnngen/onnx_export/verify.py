"""The export's check: onnxruntime's log-probabilities against torch's, on a held-out text.

The text is cut into two rows, so batching is checked too. The reference is the model's own
forward pass in fp32 (what `eval` and `score` compute). `step.onnx` runs it one token at a
time; `window.onnx` runs it in two windows, the second starting from the first's state_out,
so carrying the state is checked as well. Every log-probability of every position, the whole
distribution and not only the targets, must be within the tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.onnx_export.models import EXAMPLE_TIME, normalized, state_shape

TOLERANCE = 1e-4  # largest |ln p_onnx - ln p_torch| allowed at any position and token
ROWS = 2


@dataclass(frozen=True)
class Verification:
    source: str  # what text was scored
    tokens: int  # positions compared, each a whole distribution
    rows: int  # batch rows they were run in
    step_max_abs_diff: float  # over whole distributions
    window_max_abs_diff: float | None  # None when no window model was exported
    target_max_abs_diff: float  # over the text's own next tokens only, either model
    tolerance: float
    onnxruntime: str  # its version

    def as_dict(self) -> dict:
        return asdict(self)


def session(model_bytes: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the library never prints
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def reference(model: RNNLM, tokens: np.ndarray) -> np.ndarray:
    """torch's log-probabilities (B, T, V) after each token of tokens (B, T), fp32."""
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(tokens))
        return normalized(model, logits).numpy()


def verify(models: dict[str, bytes], model: RNNLM, ids: np.ndarray, source: str,
           tolerance: float = TOLERANCE) -> Verification:  # fmt: skip
    """Run the ONNX models on `ids` (a line start first) and compare with torch; an error
    when any log-probability differs by more than `tolerance` (or is not finite)."""
    import onnxruntime

    model = model.float().cpu().eval()
    length = len(ids) // ROWS
    if length < 2:
        raise RnngenError("the text to verify the export on is too short (under 4 tokens)")
    tokens = np.asarray(ids[: ROWS * length], dtype=np.int64).reshape(ROWS, length)
    expected = reference(model, tokens)  # (R, T, V)
    layers, parts, hidden = state_shape(model.config)
    zeros = np.zeros((layers, parts, ROWS, hidden), dtype=np.float32)
    step, state, got = session(models["step"]), zeros, []
    for t in range(length):
        logprobs, state = step.run(None, {"tokens": tokens[:, t], "state": state})
        got.append(logprobs)
    step_got = np.stack(got, axis=1)
    step_diff, target_diff = _max_diff(step_got, expected), _target_diff(step_got, expected, tokens)
    window_diff = None
    if "window" in models:
        window, half = session(models["window"]), length // 2
        half -= half == EXAMPLE_TIME  # a length the exporter never saw
        first, state = window.run(None, {"tokens": tokens[:, :half], "state": zeros})
        second, _ = window.run(None, {"tokens": tokens[:, half:], "state": state})
        window_got = np.concatenate([first, second], axis=1)
        window_diff = _max_diff(window_got, expected)
        target_diff = max(target_diff, _target_diff(window_got, expected, tokens))
    result = Verification(source, ROWS * length, ROWS, step_diff, window_diff, target_diff,
                          tolerance, onnxruntime.__version__)  # fmt: skip
    worst = max(d for d in (step_diff, window_diff) if d is not None)
    if not worst <= tolerance:  # NaN fails too
        raise RnngenError(
            f"the ONNX export does not match torch: log-probabilities differ by up to "
            f"{worst:.3g} (> {tolerance:g}) over {result.tokens} tokens of {source}"
        )
    return result


def _max_diff(got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        raise RnngenError(f"the ONNX model gave shape {got.shape}, torch {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected)))


def _target_diff(got: np.ndarray, expected: np.ndarray, tokens: np.ndarray) -> float:
    """The largest difference on the log-probabilities of the tokens that come next."""
    following = tokens[:, 1:, None]  # (R, T-1, 1)
    pick = np.take_along_axis
    return float(np.max(np.abs(pick(got[:, :-1], following, -1).astype(np.float64)
                               - pick(expected[:, :-1], following, -1))))  # fmt: skip


def verification_ids(model: RNNLM, tokenizer, provenance, data, tokens: int
                     ) -> tuple[np.ndarray, str]:  # fmt: skip
    """Up to `tokens` ids to verify on, after a line start: `data` (a file), else the
    checkpoint's held-out split, else (when that text is gone) text the model samples."""
    from rnngen.scoring.trained_on import heldout_text, with_context

    try:
        text = heldout_text(provenance, tokenizer, data)
        ids, source = tokenizer.encode_array(text.text[: 8 * tokens]), text.source
    except RnngenError:
        if data is not None:
            raise
        ids, source = _sampled_ids(model, tokenizer, tokens), "text sampled from the model"
    ids = with_context(tokenizer, np.asarray(ids, dtype=np.int64))[: tokens + 1]
    return ids, source


def _sampled_ids(model: RNNLM, tokenizer, tokens: int) -> np.ndarray:
    """Seeded text of the model's own (its held-out text is gone): any text will do to
    compare two implementations of the same function."""
    from rnngen.sampling.batch import SampleBatch

    batch = SampleBatch(model.float().cpu().eval(), tokenizer, "fp32")
    batch.add("", [0], max_tokens=tokens + 1)  # never ends within the loop
    ids = []
    for _ in range(tokens):
        batch.choose()
        ids.append(int(batch.tokens[0]))  # the token chosen, before it runs
        batch.advance()
    return np.asarray(ids, dtype=np.int64)
