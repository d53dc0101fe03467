"""Rows of results, the machine they came from, and how they are printed: a text
table on stdout, a Markdown table for the README, and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .procs import tool_version


@dataclass
class Row:
    """One measure. ``resource``/``peer`` are medians in ``unit``; ``ratio`` is the
    median of the per-pair ratios resource ÷ peer (see ``ratio_of``)."""

    id: str
    label: str
    unit: str
    target: str
    resource: float | None = None
    peer: float | None = None
    ratio: float | None = None
    ratio_of: str = "wall"
    passed: bool | None = None
    resource_rss: float | None = None
    peer_rss: float | None = None
    samples: int = 0
    pairs: list[tuple[float | None, float | None]] = field(default_factory=list)  # A, B
    note: str = ""
    error: str | None = None

    @property
    def result(self) -> str:
        if self.error:
            return "ERROR"
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit in ("MiB", "MiB/s"):
        return f"{value:.0f} {unit}"
    return f"{value:.3g} {unit}"


def fmt_rss(row: Row) -> str:
    if row.resource_rss is None and row.peer_rss is None:
        return ""
    a = "—" if row.resource_rss is None else f"{row.resource_rss:.0f}"
    b = "—" if row.peer_rss is None else f"{row.peer_rss:.0f}"
    return f"{a} / {b} MiB"


def text_table(rows: list[Row]) -> str:
    header = ("id", "measure", "resource", "peer", "ratio", "target", "result", "peak RSS res/peer")
    lines = [header]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            (
                row.id,
                row.label,
                fmt(row.resource, row.unit),
                fmt(row.peer, row.unit),
                ratio,
                row.target,
                row.result,
                fmt_rss(row),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for number, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if number == 0:
            out.append("  ".join("-" * w for w in widths))
    for row in rows:
        if row.note:
            out.append(f"  {row.id}: {row.note}")
        if row.error:
            out.append(f"  {row.id}: ERROR {row.error}")
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| measure | resource | peer | ratio | target | result | peak RSS resource / peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.label} | {fmt(row.resource, row.unit)} | {fmt(row.peer, row.unit)} | "
            f"{ratio} | {row.target} | **{row.result}** | {fmt_rss(row) or '—'} |"
        )
    return "\n".join(lines)


@dataclass
class Machine:
    nproc: int
    cpu: str
    kernel: str
    memory: str
    python: str
    tools: dict[str, str]
    load_before: str
    load_after: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"machine: {self.nproc} cores, {self.cpu}, Linux {self.kernel}, {self.memory}",
            f"load average (1/5/15 min): {self.load_before} before, {self.load_after} after",
            f"resource python: {self.python}",
            "peers: " + "; ".join(f"{k} {v}" for k, v in self.tools.items()),
        ]
        out += [f"{k}: {v}" for k, v in self.extra.items()]
        return out


def describe_machine(python: str) -> Machine:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        meminfo = dict(
            line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines()
        )
        total = int(meminfo["MemTotal"].split()[0]) // 1024
        available = int(meminfo["MemAvailable"].split()[0]) // 1024
        memory = f"{total} MiB RAM ({available} MiB available)"
    except (OSError, KeyError, ValueError):
        pass
    tools = {
        "skopeo": tool_version(["skopeo", "--version"]).removeprefix("skopeo version "),
        "umoci": tool_version(["umoci", "--version"]).removeprefix("umoci version "),
        "docker-registry": tool_version(["docker-registry", "--version"]).split()[-1],
        "tar": tool_version(["tar", "--version"]).split()[-1],
    }
    return Machine(
        nproc=os.cpu_count() or 0,
        cpu=cpu,
        kernel=platform.release(),
        memory=memory,
        python=python,
        tools=tools,
        load_before=load_average(),
    )


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def write_results(path: Path, rows: list[Row], machine: Machine, settings: dict) -> None:
    data = {
        "settings": settings,
        "machine": asdict(machine),
        "rows": [{**asdict(row), "result": row.result} for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
