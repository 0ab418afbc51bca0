"""The OpenAI wire format: request bodies checked field by field, and error objects.

Every bad request becomes an `APIError` with OpenAI's error object
(`{"error": {"message", "type", "param", "code"}}`) and a 4xx status; nothing here touches
a model, so a bad request never reaches (or disturbs) the scheduler.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

MAX_STOPS = 4  # as OpenAI
MAX_SEED = 2**62 - 1  # rnngen sample's range (sample i uses seed + i)


class APIError(Exception):
    """A request answered with an OpenAI-style error object."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}  # fmt: skip


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Completion:
    """A checked `POST /v1/completions` body."""

    model: str
    prompts: tuple[str, ...]  # one or several; each gets n choices
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage
    echo: bool = False
    ngram: bool = False  # rnngen: sample the checkpoint's Kneser-Ney n-gram alone
    mix: float | str | None = None  # rnngen: the RNN + n-gram mixture, "fit" or λ
    user: str | None = field(default=None, compare=False)

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.n


# Fields of OpenAI's completions API that rnngen does not implement: accepted only at the
# value that means "off", so a client that sends its defaults still works.
_INERT = {
    "suffix": (None, ""),
    "logprobs": (None, 0, False),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
}


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON: {e}",
                       code="invalid_json") from None  # fmt: skip
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _number(body: dict, name: str, default: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"'{name}' must be a number, got {json.dumps(value)}", name, "invalid_type")
    if not math.isfinite(value):
        raise bad(f"'{name}' must be finite", name)
    return float(value)


def _integer(body: dict, name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"'{name}' must be an integer, got {json.dumps(value)}", name, "invalid_type")
    return value


def _boolean(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(f"'{name}' must be true or false, got {json.dumps(value)}", name,
                  "invalid_type")  # fmt: skip
    return value


def model_name(body: dict, models) -> str:
    name = body.get("model")
    if name is None:
        raise bad(f"'model' is required: one of {sorted(models)}", "model", "missing_field")
    if not isinstance(name, str):
        raise bad("'model' must be a string", "model", "invalid_type")
    if name not in models:
        raise APIError(404, f"the model {name!r} is not served here; GET /v1/models lists "
                       f"the models: {sorted(models)}", param="model",
                       code="model_not_found")  # fmt: skip
    return name


def check_fields(body: dict, known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad(f"unknown field {unknown[0]!r}; the fields are {sorted(known)}",
                  unknown[0], "unknown_field")  # fmt: skip


COMPLETION_FIELDS = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed",
    "stream", "stream_options", "echo", "best_of", "user", "ngram", "mix", *_INERT,
}  # fmt: skip


def parse_completion(body: dict, models, *, default_max_tokens: int, max_tokens_cap: int,
                     max_rows: int) -> Completion:  # fmt: skip
    """A checked completion request, or an APIError naming the field at fault."""
    check_fields(body, COMPLETION_FIELDS)
    model = model_name(body, models)
    prompt = body.get("prompt", "")
    if prompt is None:
        prompt = ""
    if isinstance(prompt, str):
        prompts = (prompt,)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = tuple(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        raise bad("'prompt' as token ids is not supported; send text", "prompt", "invalid_type")
    else:
        raise bad("'prompt' must be a string or a non-empty list of strings", "prompt",
                  "invalid_type")  # fmt: skip
    for name, allowed in _INERT.items():
        if body.get(name) not in allowed:
            hint = " (POST /v1/score gives log-probabilities)" if name == "logprobs" else ""
            raise bad(f"'{name}' is not supported by rnngen{hint}", name, "unsupported_field")
    max_tokens = _integer(body, "max_tokens", default_max_tokens)
    if max_tokens < 1:
        raise bad(f"'max_tokens' must be at least 1, got {max_tokens}", "max_tokens")
    if max_tokens > max_tokens_cap:
        raise bad(f"'max_tokens' is at most {max_tokens_cap} on this server, got {max_tokens}",
                  "max_tokens")  # fmt: skip
    temperature = _number(body, "temperature", 1.0)
    if temperature < 0:
        raise bad(f"'temperature' must be 0 (greedy) or more, got {temperature:g}", "temperature")
    top_p = _number(body, "top_p", 1.0)
    if not 0 < top_p <= 1:
        raise bad(f"'top_p' must be in (0, 1], got {top_p:g}", "top_p")
    top_k = _integer(body, "top_k", 0)
    if top_k < 0:
        raise bad(f"'top_k' must be 0 (off) or more, got {top_k}", "top_k")
    n = _integer(body, "n", 1)
    if n < 1:
        raise bad(f"'n' must be at least 1, got {n}", "n")
    best_of = _integer(body, "best_of", None)
    if best_of is not None and best_of != n:
        raise bad("'best_of' is not supported (other than equal to 'n')", "best_of",
                  "unsupported_field")  # fmt: skip
    if len(prompts) * n > max_rows:
        raise bad(f"{len(prompts)} prompt(s) x n={n} is more than the {max_rows} streams this "
                  "server runs at once (--max-batch)", "n")  # fmt: skip
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise bad("'stop' must be a string or a list of strings", "stop", "invalid_type")
    if len(stops) > MAX_STOPS:
        raise bad(f"'stop' takes at most {MAX_STOPS} strings", "stop")
    if any(not s for s in stops):
        raise bad("'stop' strings must not be empty", "stop")
    seed = _integer(body, "seed", None)
    if seed is not None and not 0 <= seed <= MAX_SEED - n:
        raise bad(f"'seed' must be between 0 and 2**62 - 1 - n, got {seed}", "seed")
    stream = _boolean(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise bad("'stream_options' takes only 'include_usage'", "stream_options")
        include_usage = _boolean(options, "include_usage")
        if not stream:
            raise bad("'stream_options' needs 'stream': true", "stream_options")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("'user' must be a string", "user", "invalid_type")
    ngram = _boolean(body, "ngram")
    mix = body.get("mix")
    if mix is not None:
        if isinstance(mix, str) and mix.strip().lower() == "fit":
            mix = "fit"
        elif isinstance(mix, bool) or not isinstance(mix, int | float) or not 0 <= mix <= 1:
            raise bad("'mix' is \"fit\" or the n-gram's weight in [0, 1]", "mix")
        else:
            mix = float(mix)
        if ngram:
            raise bad("'ngram' samples the n-gram alone; it does not go with 'mix'", "mix")
    return Completion(model=model, prompts=prompts, max_tokens=max_tokens,
                      temperature=temperature, top_p=top_p, top_k=top_k, n=n, stop=stops,
                      seed=seed, stream=stream, include_usage=include_usage,
                      echo=_boolean(body, "echo"), ngram=ngram, mix=mix, user=user)  # fmt: skip


SCORE_FIELDS = {"model", "lines", "input"}


def parse_score(body: dict, models, *, max_lines: int) -> tuple[str, list[str]]:
    """`POST /v1/score`: {"model", "lines": [str, ...]} (or "input", a string or a list)."""
    check_fields(body, SCORE_FIELDS)
    model = model_name(body, models)
    lines = body.get("lines", body.get("input"))
    if isinstance(lines, str):
        lines = [lines]
    if not isinstance(lines, list) or not lines or not all(isinstance(s, str) for s in lines):
        raise bad("'lines' must be a non-empty list of strings", "lines", "invalid_type")
    if len(lines) > max_lines:
        raise APIError(413, f"at most {max_lines} lines a request, got {len(lines)}",
                       param="lines", code="too_many_lines")  # fmt: skip
    return model, lines
