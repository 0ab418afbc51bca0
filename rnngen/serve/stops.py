"""OpenAI's stop strings: the text a client sees ends before the stop string.

`rnngen sample` keeps the stop string (its text ends with it); the OpenAI API leaves it out.
The library's text is the reference; the server cuts the stop from its end. While streaming,
text that may be the start of a stop string is held back until the next piece tells.
"""

from __future__ import annotations


class StopTrim:
    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.held = ""  # the end of the text that could begin a stop string

    def feed(self, text: str) -> str:
        """New text in; the part of it (and of what was held) that is surely not a stop."""
        if not self.stops:
            return text
        text = self.held + text
        keep = _prefix_tail(text, self.stops)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def end(self, reason: str) -> str:
        """The sample ended: what was held is text, unless it was the stop string."""
        held, self.held = self.held, ""
        return StopTrim.final(held, self.stops, reason)

    @staticmethod
    def final(text: str, stops: tuple[str, ...], reason: str) -> str:
        """A whole text that ended for `reason`, without the stop string at its end (the
        longest that ends it: where the earliest match starts)."""
        if reason != "stop":
            return text
        ending = [s for s in stops if text.endswith(s)]
        return text[: len(text) - max(map(len, ending))] if ending else text


def _prefix_tail(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is the start of a stop string (or all of one:
    a stop the library has found is cut at the end)."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop), len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best
