// loopwright UI: the span editor (task spans). The text with its spans coloured by label; select
// with the mouse or shift+arrows, a label key marks the selection; click or Tab selects a span,
// [ ] move its start, { } its end, Delete removes it. The answer is [{start, end, label}] in
// character offsets ([start, end), as tasks/spans.py stores it). Plain DOM, no framework.
"use strict";

const spans = (() => {
  const { el } = lw;
  const COLOURS = ["#f9d56e", "#8fd0f5", "#a6e3a1", "#f5a9c9", "#cbb2f7", "#f7b184", "#94dbd3", "#dcdc82", "#c3c9d2", "#f2958c"];
  const colour = (labels, label) => COLOURS[Math.max(0, labels.indexOf(label)) % COLOURS.length];
  const pct = (p) => `${Math.round(p * 100)}%`;
  let active = null; // the editor on the page: the keys below go to it

  // The model's shapes for an item: the suggestion's label when it is a JSON list (each entry may
  // carry a score; otherwise the suggestion's confidence), else the payload's "proposals".
  function proposed(suggestion, payload) {
    let rows = null;
    if (suggestion && typeof suggestion.label === "string") {
      try {
        const parsed = JSON.parse(suggestion.label);
        if (Array.isArray(parsed)) rows = parsed;
      } catch { /* a plain label: no shapes */ }
    }
    if (!rows && payload && Array.isArray(payload.proposals)) rows = payload.proposals;
    const fallback = suggestion && typeof suggestion.confidence === "number" ? suggestion.confidence : null;
    return (rows || []).filter((r) => r && typeof r === "object")
      .map((r) => ({ ...r, score: typeof r.score === "number" ? r.score : fallback }));
  }

  // A span editor over `text`, starting from `initial` (shapes; `score` set = the model's);
  // `others`: earlier answers [{who, shapes}] listed with a button to start from one.
  function editor(config, text, initial, others = []) {
    const labels = config.labels;
    let items = initial.filter((s) => s.end > s.start && s.end <= text.length)
      .map((s) => ({ start: s.start, end: s.end, label: s.label, score: s.score ?? null, model: s.score != null }));
    let caret = 0, anchor = 0, sel = null, message = "";
    const body = el("div", { class: "span-text", id: "span-text", tabindex: "0" });
    const status = el("div", { class: "shape-status small", id: "shape-status" });
    const list = el("ol", { class: "shape-list", id: "shape-list" });
    const hints = el("div", { class: "shape-hints small muted" },
      "Select text with the mouse or ", el("kbd", {}, "shift"), "+", el("kbd", {}, "←"), el("kbd", {}, "→"),
      " (", el("kbd", {}, "ctrl"), " too: by word), then a label key · click or ", el("kbd", {}, "Tab"), " selects a span · ",
      el("kbd", {}, "["), " ", el("kbd", {}, "]"), " move its start, ", el("kbd", {}, "{"), " ", el("kbd", {}, "}"), " its end · ",
      el("kbd", {}, "Del"), " removes it · ", el("kbd", {}, "Esc"), " deselects");
    const view = el("div", { class: "span-editor" }, body, status, list, earlier(others, (s) => `${s.label} “${text.slice(s.start, s.end)}”`, use), hints);

    const lo = () => Math.min(caret, anchor), hi = () => Math.max(caret, anchor);
    const sorted = () => items.sort((a, b) => a.start - b.start || a.end - b.end);

    function draw() {
      const cuts = new Set([0, text.length, lo(), hi()]);
      for (const s of items) cuts.add(s.start).add(s.end);
      const at = [...cuts].filter((c) => c >= 0 && c <= text.length).sort((a, b) => a - b);
      const nodes = [];
      for (let k = 0; k + 1 < at.length || (k === 0 && !text.length); k++) {
        const [a, b] = [at[k], at[k + 1] ?? 0];
        if (caret === anchor && sel === null && a === caret) nodes.push(el("span", { class: "caret" }));
        if (b <= a) continue;
        const i = items.findIndex((s) => s.start <= a && b <= s.end);
        const part = el("span", { "data-start": String(a) }, text.slice(a, b));
        if (i >= 0) {
          part.className = `sp${i === sel ? " on" : ""}${items[i].model ? " model" : ""}`;
          part.dataset.i = String(i);
          part.style.background = colour(labels, items[i].label);
        }
        if (a >= lo() && b <= hi() && hi() > lo()) part.classList.add("sel");
        nodes.push(part);
        if (i >= 0 && b === items[i].end) {
          const tag = el("span", { class: "tag", "data-i": String(i) }, items[i].label);
          tag.style.background = colour(labels, items[i].label);
          nodes.push(tag);
        }
      }
      if (caret === anchor && sel === null && caret === text.length && text.length) nodes.push(el("span", { class: "caret" }));
      body.replaceChildren(...nodes);
      list.replaceChildren(...items.map((s, i) => {
        const who = s.model ? `model ${s.score == null ? "" : pct(s.score)}` : "yours";
        const row = el("li", { "data-i": String(i), class: i === sel ? "on" : "", onclick: () => select(i) },
          el("span", { class: "swatch" }), el("strong", {}, s.label), ` “${text.slice(s.start, s.end)}” `,
          el("span", { class: "muted" }, `[${s.start}, ${s.end}) · ${who}`));
        row.firstChild.style.background = colour(labels, s.label);
        return row;
      }));
      const what = sel !== null
        ? `Span ${sel + 1} of ${items.length}: ${items[sel].label} “${text.slice(items[sel].start, items[sel].end)}” [${items[sel].start}, ${items[sel].end}) — a label key relabels it`
        : hi() > lo() ? `Selected “${text.slice(lo(), hi())}” [${lo()}, ${hi()}) — press a label key to mark it`
        : `${items.length} span${items.length === 1 ? "" : "s"} · Enter submits them`;
      status.replaceChildren(el("span", {}, what), message ? el("span", { class: "warn" }, ` · ${message}`) : "");
      message = "";
      view.dataset.spans = JSON.stringify(value());
    }

    function select(i) {
      sel = i === null || !items.length ? null : ((i % items.length) + items.length) % items.length;
      if (sel !== null) caret = anchor = items[sel].end;
      draw();
    }

    const overlaps = (s, e, skip) => items.some((x) => x !== skip && x.start < e && s < x.end);

    // A label key: mark the selection (trimmed of blanks), else relabel the selected span.
    function pick(label) {
      if (hi() > lo()) {
        let [s, e] = [lo(), hi()];
        while (s < e && /\s/.test(text[s])) s++;
        while (e > s && /\s/.test(text[e - 1])) e--;
        if (e <= s) message = "the selection is only blanks";
        else if (overlaps(s, e, null)) message = "that overlaps a span: adjust or delete it first";
        else {
          const made = { start: s, end: e, label, score: null, model: false };
          items.push(made);
          sorted();
          sel = items.indexOf(made);
          caret = anchor = e;
        }
      } else if (sel !== null) Object.assign(items[sel], { label, model: false });
      else message = "select some text first (mouse, or shift+arrows), then a label key";
      draw();
    }

    // Move the selected span's start (edge "start") or end by `by` characters, within its neighbours.
    function nudge(edge, by) {
      if (sel === null) return;
      const s = items[sel];
      const prev = items[sel - 1], next = items[sel + 1];
      if (edge === "start") s.start = Math.min(Math.max(s.start + by, prev ? prev.end : 0), s.end - 1);
      else s.end = Math.max(Math.min(s.end + by, next ? next.start : text.length), s.start + 1);
      s.model = false;
      caret = anchor = s.end;
      draw();
    }

    function use(k) {
      items = others[k].shapes.map((s) => ({ start: s.start, end: s.end, label: s.label, score: null, model: false }));
      sel = null;
      draw();
    }

    function remove() {
      if (sel === null) return;
      items.splice(sel, 1);
      sel = null;
      draw();
    }

    // Word jumps: to the next / previous token edge.
    function jump(from, dir) {
      let i = from;
      if (dir > 0) { while (i < text.length && !/\w/.test(text[i])) i++; while (i < text.length && /\w/.test(text[i])) i++; }
      else { while (i > 0 && !/\w/.test(text[i - 1])) i--; while (i > 0 && /\w/.test(text[i - 1])) i--; }
      return i === from ? Math.min(Math.max(from + dir, 0), text.length) : i;
    }

    function key(event) {
      const k = event.key;
      if (k === "ArrowLeft" || k === "ArrowRight") {
        const dir = k === "ArrowLeft" ? -1 : 1;
        if (sel !== null && !event.shiftKey) caret = dir < 0 ? items[sel].start : items[sel].end;
        else caret = event.ctrlKey ? jump(caret, dir) : Math.min(Math.max(caret + dir, 0), text.length);
        if (!event.shiftKey) anchor = caret;
        sel = null;
      } else if (k === "Home" || k === "End") {
        caret = k === "Home" ? 0 : text.length;
        if (!event.shiftKey) anchor = caret;
        sel = null;
      } else if (k === "Tab") {
        if (!items.length) return false;
        return select(sel === null ? (event.shiftKey ? items.length - 1 : 0) : sel + (event.shiftKey ? -1 : 1)), true;
      } else if (event.ctrlKey || event.altKey || event.metaKey) return false;
      else if (k === "[" || k === "]") return nudge("start", k === "[" ? -1 : 1), true;
      else if (k === "{" || k === "}") return nudge("end", k === "{" ? -1 : 1), true;
      else if (k === "Delete" || k === "Backspace") return remove(), true;
      else if (k === "Escape") { sel = null; anchor = caret; }
      else return false;
      draw();
      return true;
    }

    // Character offset of a DOM position inside the text (label tags are not text).
    function offsetOf(node, off) {
      if (node.nodeType === Node.TEXT_NODE) {
        const part = node.parentElement;
        if (part && part.dataset.start !== undefined && !part.classList.contains("tag")) return Number(part.dataset.start) + off;
        node = part; off = 0;
      }
      const kids = node === body ? [...body.childNodes] : null;
      if (!kids) return offsetOf(node.parentElement === body ? body : node.parentElement, 0);
      for (let j = Math.min(off, kids.length) - 1; j >= 0; j--) {
        const e = kids[j];
        if (e.dataset && e.dataset.start !== undefined && !e.classList.contains("tag")) return Number(e.dataset.start) + e.textContent.length;
      }
      return 0;
    }

    body.addEventListener("mouseup", (event) => {
      const range = window.getSelection();
      if (range && !range.isCollapsed && body.contains(range.anchorNode) && body.contains(range.focusNode)) {
        anchor = offsetOf(range.anchorNode, range.anchorOffset);
        caret = offsetOf(range.focusNode, range.focusOffset);
        sel = null;
        range.removeAllRanges();
      } else {
        const hit = event.target.closest("[data-i]");
        if (hit) return body.focus({ preventScroll: true }), select(Number(hit.dataset.i));
        if (range && range.anchorNode && body.contains(range.anchorNode)) caret = anchor = offsetOf(range.anchorNode, range.anchorOffset);
        sel = null;
      }
      body.focus({ preventScroll: true });
      draw();
    });

    const me = { view, pick, key, value, heatToggle: () => {} };
    function value() {
      return sorted().map((s) => ({ start: s.start, end: s.end, label: s.label }));
    }
    active = me;
    draw();
    return me;
  }

  render.editorKeys(() => active);

  // The earlier answers (review): each annotator's shapes in words and a button to start from them.
  function earlier(others, describe, use) {
    if (!others.length) return "";
    return el("div", { class: "shape-others small", id: "shape-others" }, el("strong", {}, "Earlier answers"),
      ...others.map((o, k) => el("div", {}, el("button", { type: "button", "data-who": o.who, onclick: () => use(k) }, `start from ${o.who}'s`),
        ` ${o.who}: `, o.shapes.length ? o.shapes.map(describe).join(" · ") : el("span", { class: "muted" }, "nothing marked"))));
  }

  return { editor, proposed, colour, earlier };
})();
