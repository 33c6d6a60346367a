"""The lineage picture (producers -> ingest topics -> routes -> derived topics) laid out by Graphviz.

We use Debian's Graphviz (`dot -Tsvg`) rather than placing boxes by hand: `dot` ranks the four kinds into
columns, orders nodes to cut edge crossings, sizes every box to its full label (no name is cut) and never
lets boxes overlap, which is what stays readable at 30+ derived topics. It runs on the server, so the page
gets a finished SVG (no JS layout library to vendor) and tests can read node positions from it.

`lineage_dot` is pure (the catalog's lineage document -> DOT text); `render_svg` runs `dot` and raises
`LayoutUnavailable` with what to install when it is missing. Rendered SVGs are cached by DOT text.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

DOT_TIMEOUT_S = 20.0
KINDS = ("producer", "ingest", "route", "derived")  # left to right
STYLE = {  # fill, border
    "producer": ("#eef4ff", "#4a6fd1"),
    "ingest": ("#fff6e5", "#c98a10"),
    "route": ("#eefaf3", "#2f9461"),
    "derived": ("#f5efff", "#7a4cc2"),
    "unrouted": ("#f4f4f4", "#999999"),
}
INSTALL_HINT = "install Graphviz (Debian: apt-get install graphviz; scripts/setup.sh does it as root)"


class LayoutUnavailable(RuntimeError):
    """Graphviz's `dot` is not installed or failed; the message says what to do."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attrs(**values: str | float) -> str:
    return "[" + ", ".join(f"{k}={_quote(str(v))}" for k, v in values.items()) + "]"


def topic_url(topic: str) -> str:
    return f"/catalog/ui/topic?name={quote(topic, safe='')}"


def _rate(value: float) -> str:
    return f"{value:.0f}/s" if value >= 10 else f"{value:.1f}/s"


def lineage_dot(lineage: Mapping[str, Any]) -> str:
    """DOT text for the catalog's lineage document (`build.lineage`): one node per producer, ingest topic,
    route and derived topic (ids kept as `kind:name`), edges as thick as their share of the top rate."""
    nodes = sorted(lineage.get("nodes") or [], key=lambda n: n["label"])
    edges = lineage.get("edges") or []
    top = max([float(e.get("per_second") or 0.0) for e in edges] + [1.0])
    lines = [
        "digraph lineage {",
        '  graph [rankdir=LR, ranksep=1.4, nodesep=0.14, fontname="Helvetica", bgcolor="white", '
        "pad=0.2, newrank=true];",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=12, height=0.32, '
        'margin="0.14,0.05", penwidth=1.2];',
        '  edge [color="#7d8fa5", arrowsize=0.6];',
    ]
    for kind in KINDS:
        members = [n for n in nodes if n["kind"] == kind or (kind == "derived" and n["kind"] == "unrouted")]
        if not members:
            continue
        lines.append(f"  subgraph {_quote(kind + 's')} {{")
        lines.append("    rank=same;")  # one column per kind
        for n in members:
            fill, border = STYLE[n["kind"]]
            label = n["label"]
            tooltip = label
            if n["kind"] == "route" and n.get("per_second") is not None:
                label = f"{label}  ({_rate(float(n['per_second']))})"
                tooltip = f"route {n['label']}: {_rate(float(n['per_second']))} routed"
            extra: dict[str, str | float] = {}
            if n["kind"] in ("ingest", "derived"):
                extra["URL"] = topic_url(n["label"])
                extra["target"] = "_top"
            if n["kind"] == "unrouted":
                extra["style"] = "rounded,filled,dashed"
            lines.append(
                f"    {_quote(n['id'])} "
                + _attrs(
                    id=n["id"],
                    label=label,
                    tooltip=tooltip,
                    fillcolor=fill,
                    color=border,
                    **{"class": n["kind"]},
                    **extra,
                )
            )
        lines.append("  }")
    for e in edges:
        rate = float(e.get("per_second") or 0.0)
        width = 1 + round(5 * rate / top)  # a few steps, so the cache is hit while rates jitter
        lines.append(
            f"  {_quote(e['from'])} -> {_quote(e['to'])} "
            + _attrs(penwidth=width, tooltip=f"{e['from']} -> {e['to']}: {_rate(rate)}")
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_path() -> str | None:
    return shutil.which("dot")


@functools.lru_cache(maxsize=32)
def render_svg(dot_text: str) -> str:
    """`dot -Tsvg` of the DOT text; LayoutUnavailable if Graphviz is missing or fails."""
    dot = dot_path()
    if dot is None:
        raise LayoutUnavailable(f"the lineage view needs Graphviz's `dot`, not on PATH: {INSTALL_HINT}")
    try:
        done = subprocess.run(
            [dot, "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=DOT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise LayoutUnavailable(f"Graphviz's dot took over {DOT_TIMEOUT_S:.0f}s on the lineage") from None
    if done.returncode != 0:
        detail = done.stderr.strip()[:300]
        raise LayoutUnavailable(f"Graphviz's dot failed (exit {done.returncode}): {detail}")
    svg = done.stdout
    return svg[svg.index("<svg") :] if "<svg" in svg else svg  # drop the XML prolog and DOCTYPE
