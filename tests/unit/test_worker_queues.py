"""``vidgate worker --queues`` and ``VIDGATE_WORKER_QUEUES``: the names a worker may be
limited to, refused when unknown (with the valid ones), all by default."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vidgate.cli import app
from vidgate.engine.worker_queues import ALL, QUEUES, UnknownQueue, parse_queues


def test_the_public_queues() -> None:
    assert list(QUEUES) == ["submit", "poll", "media", "webhooks", "cancel", "gpu"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, ALL),
        ([], ALL),
        ("poll", {"poll"}),
        ("poll, media", {"poll", "media"}),
        (["poll", "media,webhooks"], {"poll", "media", "webhooks"}),
        (["GPU"], {"gpu"}),
    ],
)
def test_queues_are_read_from_lists_and_repeats(
    values: list[str] | str | None, expected: set[str]
) -> None:
    assert parse_queues(values) == expected


def test_an_unknown_queue_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(UnknownQueue) as caught:
        parse_queues("poll,finalize")
    assert str(caught.value) == (
        "unknown queue 'finalize'; the queues are: submit, poll, media, webhooks, cancel, gpu"
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--queues", "poll", "--queues", "jobs"], {}),
        ([], {"VIDGATE_WORKER_QUEUES": "media,jobs"}),
    ],
)
def test_the_worker_command_refuses_an_unknown_queue_before_starting(
    args: list[str], env: dict[str, str]
) -> None:
    result = CliRunner().invoke(app, ["worker", *args], env=env)
    assert result.exit_code == 2
    assert "unknown queue 'jobs'; the queues are: submit, poll" in result.output
