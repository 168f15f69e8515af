"""Result rows, the console table and docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.harness import HotSpot


@dataclass(frozen=True)
class Row:
    bench: str
    metric: str
    value: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""
    # True/False against the goal; None for figures without a goal.
    ok: bool | None = None


@dataclass
class Profile:
    name: str
    file: str
    top_self: list[HotSpot]
    top_vidgate: list[HotSpot]


@dataclass
class Results:
    command: str
    machine: dict[str, str]
    started: dt.datetime
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        mark = {True: "PASS", False: "FAIL", None: "    "}[row.ok]
        extra = f" (baseline {row.baseline})" if row.baseline else ""
        extra += f" ratio {row.ratio}" if row.ratio else ""
        goal = f"  goal {row.goal}" if row.goal else ""
        print(f"  [{mark}] {row.bench} {row.metric}: {row.value}{extra}{goal}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


def fmt_ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def fmt_rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def _verdict(ok: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: ""}[ok]


def print_table(results: Results) -> None:
    table = Table(title="vidgate benchmarks", show_lines=False)
    for column in ("#", "metric", "value", "baseline", "ratio", "goal", ""):
        table.add_column(column, overflow="fold")
    for row in results.rows:
        verdict = _verdict(row.ok)
        style = {"pass": "green", "FAIL": "red"}.get(verdict, "")
        table.add_row(
            row.bench,
            row.metric,
            row.value,
            row.baseline,
            row.ratio,
            row.goal,
            f"[{style}]{verdict}[/{style}]" if style else "",
        )
    Console(width=max(160, Console().width)).print(table)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run_title(results: Results) -> str:
    return f"### Run of {results.started.strftime('%Y-%m-%d %H:%M:%S UTC')}"


def markdown_run(results: Results) -> str:
    lines = [
        run_title(results),
        "",
        f"Command: `{results.command}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {_md_cell(v)} |" for k, v in results.machine.items()),
        "",
        "| # | metric | value | baseline | ratio | goal | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results.rows:
        cells = [r.bench, r.metric, r.value, r.baseline, r.ratio, r.goal, _verdict(r.ok)]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    if results.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {_md_cell(n)}" for n in results.notes]
    for profile in results.profiles:
        lines += [
            "",
            f"Profile {profile.name} (py-spy, `{profile.file}`): functions by share of samples",
            "",
            "| self % | total % | function (innermost frames) |",
            "|---:|---:|---|",
        ]
        lines += [
            f"| {h.self_pct:.1f} | {h.total_pct:.1f} | `{_md_cell(h.function)}` |"
            for h in profile.top_self
        ]
        lines += ["", "| total % | vidgate function |", "|---:|---|"]
        lines += [f"| {h.total_pct:.1f} | `{_md_cell(h.function)}` |" for h in profile.top_vidgate]
    return "\n".join(lines)


GOALS = [
    (
        "B1",
        "`GET /v1/videos/{id}` with auth, 64 connections: RPS, p50, p99",
        "the same server stack answering a trivial route",
        "RPS ratio >= 0.5; p99 < 20 ms on 2 cores",
    ),
    (
        "B2",
        "`POST /v1/videos` (JSON and multipart), sandbox with no latency: creates/s, p99",
        "B1's trivial route",
        ">= 300 creates/s, p99 < 50 ms",
    ),
    (
        "B3",
        "10,000 jobs in flight on a fake provider that finishes each after 60 s, one process",
        "idle gateway",
        "average CPU < 1 core, RSS < 1 GiB, completion noticed within one poll interval"
        " + 1 s (p99)",
    ),
    (
        "B4",
        "`GET .../content` of a 100 MB MP4, full and Range",
        "the same file from nginx on loopback",
        "throughput ratio >= 0.8",
    ),
    (
        "B5",
        "gateway overhead per job: wall time minus upstream time, sandbox with no latency",
        "-",
        "p50 < 300 ms, p99 < 1 s",
    ),
    (
        "B6",
        "cost growth: B1 and B2 with 10 k, 100 k and 1 M stored jobs",
        "-",
        "flat within 20 %",
    ),
    (
        "B7",
        "50 jobs finishing upstream at one instant, each polled by a client once a second",
        "a minimal pass-through gateway (and LiteLLM's proxy) on the same fake upstream",
        "upstream done -> completed p99 <= 0.5 s; client has the video no later than"
        " through the pass-through (p99)",
    ),
    (
        "B8",
        "`GET .../content` of a small stored video (~8 KB), 64 connections",
        "a status read of the same job",
        "CPU per request <= 2 x the status read's",
    ),
    (
        "B9",
        "the console's gallery: `GET /v1/videos?limit=48&links=true` (and filtered by model,"
        " status) in a project of 10,000 videos, one request at a time: p50, p99",
        "the same list without links or filters of an empty project, same gateway",
        "p99 < 300 ms",
    ),
]

HEADER = "\n".join(
    [
        "# Benchmarks",
        "",
        "Figures from `bench/run.py`; how each benchmark works, and why:"
        " [bench/README.md](../bench/README.md).",
        "The newest run comes first; every run records its machine, date and exact command.",
        "Figures are only comparable between runs on the same machine.",
        "",
        "The goals:",
        "",
        "| # | what | baseline in the same run | goal |",
        "|---|---|---|---|",
        *("| " + " | ".join(goal) + " |" for goal in GOALS),
        "",
    ]
)

_RUNS = re.compile(r"<!-- runs -->\n(.*)", re.S)
_RUN_SPLIT = re.compile(r"(?=^### Run of )", re.M)


def write_markdown(results: Results, path: Path, *, keep: int = 6) -> None:
    """Write ``path``: the header, this run, then up to ``keep - 1`` earlier runs.

    Written again as the run goes on: this run's block replaces its earlier version."""
    earlier: list[str] = []
    if path.exists():
        match = _RUNS.search(path.read_text())
        if match:
            earlier = [r.strip() for r in _RUN_SPLIT.split(match.group(1)) if r.strip()]
    title = run_title(results)
    earlier = [r for r in earlier if r.splitlines()[0] != title]
    runs = [markdown_run(results), *earlier][:keep]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n## Runs\n\n<!-- runs -->\n" + "\n\n".join(runs) + "\n")
