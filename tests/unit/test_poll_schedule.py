"""The poll schedule of engine/poll_schedule.py, played against simulated tasks: reads at
the expected end, bounded quick reads after it, the age rule as the fallback."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from itertools import pairwise

from vidgate.core.jobs import PollClaim
from vidgate.core.spec import JobSpec
from vidgate.engine.backoff import MAX_POLL_S, adaptive_poll_s
from vidgate.engine.poll_schedule import (
    CHECKPOINT,
    FAST_POLL_S,
    FAST_WINDOW_S,
    next_read,
    plan_read,
)
from vidgate.providers.base import UpstreamStatus

Progress = Callable[[float], int | None]


def linear(duration: float) -> Progress:
    """What the bench fake (and roughly OpenAI) reports: whole percents of the run."""
    return lambda t: min(99, int(100 * t / duration))


def play(done_at: float, progress: Progress, *, first: float = 1.0) -> list[float]:
    """The read times of a task that ends at ``done_at``, the first read at ``first``,
    each later one where ``next_read`` puts it, up to the first that sees it done."""
    reads, t, kept = [], first, None
    while True:
        reads.append(t)
        if t >= done_at:
            return reads
        plan = next_read(t, progress(t), kept)
        kept = plan.end_s if plan.end_s is not None else kept
        t += plan.delay_s
        assert len(reads) < 1000


def play_age_rule(done_at: float, *, first: float = 1.0) -> list[float]:
    reads, t = [], first
    while True:
        reads.append(t)
        if t >= done_at:
            return reads
        t += adaptive_poll_s(t)


def test_a_task_with_progress_is_read_at_its_end_and_seldom_before() -> None:
    for duration in (5.0, 10.0, 60.0, 600.0):
        reads, age = play(duration, linear(duration)), play_age_rule(duration)
        assert 0 <= reads[-1] - duration <= FAST_POLL_S, (duration, reads)
        if duration <= 60:
            # Fewer reads than the age rule (which notices 0.1-17 s late here).
            assert len(reads) < len(age), (duration, reads, age)
        else:
            # Reads at most every MAX_POLL_S, as the age rule, then a short approach.
            assert len(reads) <= len(age) + 8, (duration, reads, age)


def test_reads_before_the_end_narrow_down_on_it() -> None:
    reads = play(60.0, linear(60.0))
    gaps = [b - a for a, b in pairwise(reads)]
    # Checkpoints close in (each most of what is left), then the quick final reads.
    assert gaps[0] <= MAX_POLL_S
    assert all(b <= a + 1e-9 for a, b in pairwise(gaps)), gaps
    assert gaps[-1] <= FAST_POLL_S


def test_a_task_stuck_near_its_end_gets_a_few_quick_reads_then_the_age_rule() -> None:
    # 99 % from 9 s on, and done only after ten minutes.
    reads = play(600.0, lambda t: min(99, int(11 * t)))
    quick = [b - a for a, b in pairwise(reads) if b - a <= FAST_POLL_S]
    assert len(quick) <= FAST_WINDOW_S / FAST_POLL_S + 3
    gaps = [b - a for a, b in pairwise(reads)]
    assert max(gaps) > MAX_POLL_S - 1e-6
    # About what the age rule alone reads over ten minutes.
    assert len(reads) <= len(play_age_rule(600.0)) + 8


def test_a_task_that_slows_down_near_its_end_is_noticed_before_the_age_rule() -> None:
    # Fast to 90 % by 9 s, then a crawl: 90 + (t - 9) / 3 %, done at 39 s.
    def uneven(t: float) -> int:
        return int(10 * t) if t < 9 else min(99, int(90 + (t - 9) / 3))

    reads, age = play(39.0, uneven), play_age_rule(39.0)
    # Later than when the estimate holds, but sooner than the age rule alone (12 s).
    assert reads[-1] - 39.0 < age[-1] - 39.0
    assert len(reads) <= len(age) + 8


def test_without_progress_the_age_rule_reads() -> None:
    for waited in (0.0, 1.0, 10.0, 100.0):
        for progress in (None, 0):
            plan = next_read(waited, progress, None)
            assert plan == (plan.__class__(adaptive_poll_s(waited), None))
    # Progress read right after the submit is no basis for an estimate.
    assert next_read(0.1, 50, None).delay_s == adaptive_poll_s(0.1)


def test_far_from_the_end_a_checkpoint_and_no_end_kept() -> None:
    plan = next_read(10.0, 20, None)  # ends between 47.6 s and 50 s
    assert plan.end_s is None
    assert abs(plan.delay_s - CHECKPOINT * (10.0 * 100 / 21 - 10.0)) < 1e-9


def test_near_the_end_the_latest_end_is_kept_and_read_at() -> None:
    plan = next_read(9.0, 90, None)  # ends between 9.89 s and 10 s
    assert plan.end_s == 10.0
    assert abs(plan.delay_s - 1.0) < 1e-9


def _claim(submitted: dt.datetime, expected_end: dt.datetime | None) -> PollClaim:
    spec = JobSpec.model_construct()  # the schedule never looks at it
    return PollClaim(
        job_id="video_x",
        provider="p",
        upstream_id="u",
        progress=0,
        poll_count=1,
        step_attempts=0,
        submitted_at=submitted,
        lease_until=submitted,
        spec=spec,
        upstream_model=None,
        upstream_state=None,
        expected_end_at=expected_end,
    )


def test_plan_read_honours_a_hint_and_keeps_the_end_on_the_job() -> None:
    submitted = dt.datetime.fromtimestamp(time.time() - 9.0, dt.UTC)
    claim = _claim(submitted, None)
    assert plan_read(claim, UpstreamStatus("running", progress=90, poll_after_s=3.0)) == (3.0, None)
    delay, end = plan_read(claim, UpstreamStatus("running", progress=90))
    assert end is not None and abs((end - submitted).total_seconds() - 10.0) < 0.1
    assert 0.8 < delay < 1.1
    # Past the kept end: quick reads, and the end stays where it was.
    past = _claim(submitted, submitted + dt.timedelta(seconds=8.5))
    assert plan_read(past, UpstreamStatus("running", progress=99)) == (FAST_POLL_S, None)


def test_a_kept_end_gives_way_when_the_progress_says_much_more_is_left() -> None:
    # Expected at 10 s, yet at 50 % after 12 s: planned again from the progress.
    plan = next_read(12.0, 50, 10.0)
    assert plan.end_s is None
    assert abs(plan.delay_s - CHECKPOINT * (12.0 * 100 / 51 - 12.0)) < 1e-9
    # At 99 % it is only late: the end stays, and the reads stay quick for a while.
    assert next_read(10.5, 99, 10.0) == next_read(10.5, None, 10.0)
    assert next_read(10.5, 99, 10.0).delay_s == FAST_POLL_S
