"""The catalog's page tests: its pages loaded in headless Chromium (`tests.browser`), the catalog app
served in-process by uvicorn on a free port, and the lineage SVG's boxes."""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.browser import dump_dom
from tests.support import free_port

SVG = "{http://www.w3.org/2000/svg}"


def loaded_dom(chromium: str, url: str) -> str:
    """The catalog page's DOM once its scripts finished loading its data (`data-loaded="true"`)."""
    dom = dump_dom(chromium, url, budget_ms=15_000)
    page = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    assert 'data-loaded="true"' in dom, f"{url} did not finish loading:\n{page[:3000]}"
    return dom


def inline_svg(dom: str) -> ET.Element:
    """The first inline <svg> of a dumped DOM, parsed (Chromium serialises it as well-formed XML)."""
    match = re.search(r"<svg\b.*?</svg>", dom, re.S)
    assert match is not None, "no inline SVG in the page"
    text = match.group(0).replace("&nbsp;", " ")
    if "xmlns=" not in text[:300]:
        text = text.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    text = text.replace("xlink:", "xlink_")  # the page's SVG does not declare the xlink prefix after inlining
    return ET.fromstring(text)


def node_boxes(svg: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """Graphviz node id -> its box (x0, y0, x1, y1) from the outline path or polygon of each node."""
    boxes = {}
    for g in svg.iter(f"{SVG}g"):
        if "node" not in (g.get("class") or "").split():
            continue
        shape = next((e for e in g.iter() if e.tag in (f"{SVG}path", f"{SVG}polygon")), None)
        assert shape is not None, f"node {g.get('id')} has no outline"
        numbers = [
            float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", shape.get("d") or shape.get("points") or "")
        ]
        xs, ys = numbers[0::2], numbers[1::2]
        title = g.find(f"{SVG}title")
        assert title is not None and title.text
        boxes[title.text] = (min(xs), min(ys), max(xs), max(ys))
    return boxes


def overlapping(boxes: dict[str, tuple[float, float, float, float]]) -> list[tuple[str, str]]:
    items = list(boxes.items())
    out = []
    for i, (a, (ax0, ay0, ax1, ay1)) in enumerate(items):
        for b, (bx0, by0, bx1, by1) in items[i + 1 :]:
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                out.append((a, b))
    return out


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1:<free port> in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="catalog-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the catalog did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
