"""What a failed upstream task is called: vidgate's codes for failures that are the
provider's (docs/api.md, "Job errors"), and whether trying it again elsewhere may help.

A task that failed upstream ends with one of four codes, whatever the provider called
it; the provider's own message and code go into the job's message:

- ``upstream_content_refused``: the provider's moderation or safety checks refused the
  prompt, an input or the output. Final: another deployment would refuse it too.
- ``upstream_rejected``: the provider refused the request as invalid. Final.
- ``upstream_timeout``: the provider gave up on the task (its own time limit).
  Transient.
- ``upstream_failed``: any other failure of the task; transient where the provider says
  it was its own (an internal error, out of memory, no capacity), else final.

``transient`` is what the engine reads: a transient failure of a submitted task is sent
once more, to the next healthy deployment of the model (engine/failover.py).

Each adapter maps its provider's documented failure codes to a ``Failure`` (a table,
data, in the adapter); ``from_text`` reads a provider's free-text reason where it has no
code, or a code the table does not know.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from vidgate.providers.base import UpstreamStatus

UPSTREAM_FAILED = "upstream_failed"
CONTENT_REFUSED = "upstream_content_refused"
UPSTREAM_TIMEOUT = "upstream_timeout"
UPSTREAM_REJECTED = "upstream_rejected"

# A provider's message in a job's error: enough to say why, never a whole body.
MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    transient: bool


FAILED = Failure(UPSTREAM_FAILED, transient=False)
TRANSIENT = Failure(UPSTREAM_FAILED, transient=True)
REFUSED = Failure(CONTENT_REFUSED, transient=False)
TIMED_OUT = Failure(UPSTREAM_TIMEOUT, transient=True)
INVALID = Failure(UPSTREAM_REJECTED, transient=False)

# Words in providers' free-text reasons, checked in this order: a refusal is final even
# when the text also says "error".
_WORDS: tuple[tuple[re.Pattern[str], Failure], ...] = (
    (
        re.compile(
            r"moderat|content[ _-]?polic|safety|sensitive|nsfw|flagged|risk[ _-]?control"
            r"|prohibited|inappropriate|responsible[ _-]?ai|unsafe|usage guidelines",
            re.IGNORECASE,
        ),
        REFUSED,
    ),
    (re.compile(r"time[ _-]?out|timed out|deadline", re.IGNORECASE), TIMED_OUT),
    (
        re.compile(
            r"internal|out of memory|\boom\b|cuda|capacity|overload|unavailable|busy"
            r"|try again|temporar|server[ _-]?error|resource[ _-]?exhausted|disconnect",
            re.IGNORECASE,
        ),
        TRANSIENT,
    ),
)
_INVALID_WORDS = re.compile(
    r"invalid|not[ _-]supported|unsupported|too[ _-](large|small|long)", re.IGNORECASE
)
_SPACE = re.compile(r"\s+")


def from_text(*texts: str | None, default: Failure = FAILED) -> Failure:
    """What a provider's free text (a reason, an unknown code) says the failure is."""
    joined = " ".join(t for t in texts if t)
    for pattern, failure in _WORDS:
        if pattern.search(joined):
            return failure
    if _INVALID_WORDS.search(joined):
        return INVALID
    return default


def lookup(
    table: Mapping[str, Failure], code: str | None, *texts: str | None, prefixes: bool = False
) -> Failure:
    """The table's entry for ``code`` (with ``prefixes``: for its longest key that
    ``code`` starts with), else what the code and texts say (``from_text``)."""
    if code:
        if code in table:
            return table[code]
        if prefixes:
            keys = [k for k in table if code.startswith(k)]
            if keys:
                return table[max(keys, key=len)]
    return from_text(code, *texts)


def message(provider: str, text: str | None, code: str | None = None) -> str:
    """``<provider>: <text> (<code>)`` on one line, at most ``MAX_MESSAGE`` characters:
    the provider's own words, never a request or a credential (adapters pass only what
    the provider said about the task)."""
    words = _SPACE.sub(" ", text or "").strip() or "the task failed"
    if code and code not in words:
        words = f"{words} ({_SPACE.sub(' ', code).strip()})"
    line = f"{provider}: {words}"
    if len(line) > MAX_MESSAGE:
        line = line[: MAX_MESSAGE - 1].rstrip() + "…"
    return line


def failed(
    failure: Failure,
    provider: str,
    text: str | None,
    code: str | None = None,
    *,
    progress: int | None = None,
    cost: Decimal | None = None,
) -> UpstreamStatus:
    """A failed task's status: ``failure``'s code, the provider's message."""
    return UpstreamStatus(
        "failed",
        progress=progress,
        error_code=failure.code,
        error_message=message(provider, text, code),
        cost=cost,
        transient=failure.transient,
    )
