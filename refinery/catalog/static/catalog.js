"use strict";
/* Shared helpers of the catalog's pages (no dependencies; everything comes from the catalog's own API). */

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function fmtRate(r) { return (r || 0).toFixed(r >= 10 ? 0 : 1) + "/s"; }
function fmtCount(n) { return (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US"); }
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function fmtTime(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z") : "–"; }
function topicLink(name) { return h("a", {href: "/catalog/ui/topic?name=" + encodeURIComponent(name)}, name); }
function param(name) { return new URLSearchParams(location.search).get(name); }

function table(headers, rows, attrs) {
  return h("table", attrs || {}, h("thead", {}, h("tr", {}, headers.map(t => h("th", {}, t)))),
           h("tbody", {}, rows));
}

function nav() {
  const q = param("q") || "";
  return h("nav", {},
    h("a", {href: "/catalog/ui"}, "Catalog"),
    h("a", {href: "/catalog/ui/lineage"}, "Lineage"),
    h("a", {href: "/catalog/ui/dlq"}, "Dead letters"),
    h("form", {action: "/catalog/ui", method: "get"},
      h("input", {name: "q", type: "search", value: q, placeholder: "search topics, routes, titles, subjects…"})));
}

async function getJSON(url) {
  const resp = await fetch(url);
  const doc = await resp.json();
  if (!resp.ok) throw new Error(doc.message || resp.statusText);
  return doc;
}

/* The lineage SVG from Graphviz, inlined so its nodes are part of the page (links, tests). */
async function loadLineage(box) {
  const resp = await fetch("/catalog/lineage.svg");
  if (!resp.ok) {
    const doc = await resp.json();
    box.replaceChildren(h("p", {class: "error", id: "lineage-error"}, "Lineage unavailable: " + doc.message));
    return;
  }
  box.innerHTML = await resp.text();
  for (const g of box.querySelectorAll("g.node")) {
    const id = g.querySelector("title").textContent;
    g.setAttribute("data-id", id);
    g.setAttribute("data-kind", id.split(":")[0]);
  }
}
