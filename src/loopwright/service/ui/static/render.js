// loopwright UI: drawing an item for its modality, explanations, guidelines and label keys.
// Shared by the annotator (annotate.js) and reviewer (review.js) pages. Plain DOM, no framework.
"use strict";

const render = (() => {
  const { el } = lw;
  // Keys for labels: 1..9, 0, then letters that are not page shortcuts (h, r, s, u).
  const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", ..."abcdefgijklmnopqtvwxyz"];

  // Labels that are single keys themselves (digits "0".."9", letters) keep their own key, so a
  // digit's key is the digit; any other label set is numbered 1..9, 0, then letters.
  const RESERVED = new Set(["h", "r", "s", "u", "?"]);
  const ownKeys = (labels) =>
    labels.every((l) => l.length === 1 && !RESERVED.has(l.toLowerCase())) &&
    new Set(labels.map((l) => l.toLowerCase())).size === labels.length;
  const keysFor = (labels) => (ownKeys(labels) ? labels.map((l) => l.toLowerCase()) : labels.map((_, i) => KEYS[i] || ""));
  const keyFor = (labels, i) => keysFor(labels)[i];
  const labelForKey = (labels, key) => {
    const i = keysFor(labels).indexOf(key.toLowerCase());
    return i >= 0 ? labels[i] : null;
  };

  const pct = (p) => `${Math.round(p * 100)}%`;

  // Red pushes towards the predicted label, blue away; alpha grows with |weight| / max.
  function heatColour(w, max, alpha = 0.85) {
    const a = max > 0 ? Math.min(1, Math.abs(w) / max) * alpha : 0;
    return w >= 0 ? `rgba(214, 48, 49, ${a})` : `rgba(47, 111, 222, ${a})`;
  }

  function pixelGrid(values) {
    const side = Math.round(Math.sqrt(values.length));
    return side * side === values.length ? side : null;
  }

  // An image item: a square grid of numbers drawn upscaled on a canvas (more ink = darker).
  function imageCanvas(values, size = 256, heat = null) {
    const side = pixelGrid(values) || values.length;
    const rows = pixelGrid(values) ? side : 1;
    const canvas = el("canvas", { width: size, height: Math.round((size * rows) / side), class: "pixels" });
    const ctx = canvas.getContext("2d");
    const cell = size / side;
    const top = Math.max(...values, 1);
    values.forEach((v, j) => {
      const shade = Math.round(255 - (255 * v) / top);
      ctx.fillStyle = `rgb(${shade}, ${shade}, ${shade})`;
      ctx.fillRect((j % side) * cell, Math.floor(j / side) * cell, cell + 0.5, cell + 0.5);
    });
    if (heat) {
      const max = Math.max(...heat.map(Math.abs));
      heat.forEach((w, j) => {
        ctx.fillStyle = heatColour(w, max, 0.6);
        ctx.fillRect((j % side) * cell, Math.floor(j / side) * cell, cell + 0.5, cell + 0.5);
      });
    }
    return canvas;
  }

  function heatCanvas(heat, size = 128) {
    const side = pixelGrid(heat) || heat.length;
    const canvas = el("canvas", { width: size, height: size, class: "pixels heat" });
    const ctx = canvas.getContext("2d");
    const cell = size / side;
    const max = Math.max(...heat.map(Math.abs));
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    heat.forEach((w, j) => {
      ctx.fillStyle = heatColour(w, max, 1);
      ctx.fillRect((j % side) * cell, Math.floor(j / side) * cell, cell + 0.5, cell + 0.5);
    });
    return canvas;
  }

  // Text with every character shaded by the summed weight of the tokens covering it.
  function highlightedText(text, explanation) {
    const weight = new Float64Array(text.length);
    for (const c of explanation ? explanation.top : []) {
      if (c.feature.includes(" ")) continue; // n-grams overlap their words; shade words only
      for (const [s, e] of c.spans) for (let i = s; i < e; i++) weight[i] += c.weight;
    }
    const max = Math.max(0, ...Array.from(weight, Math.abs));
    const box = el("div", { class: "text-item" });
    let start = 0;
    for (let i = 1; i <= text.length; i++) {
      if (i < text.length && weight[i] === weight[start]) continue;
      const part = text.slice(start, i);
      if (weight[start] === 0) box.append(part);
      else {
        const mark = el("mark", { title: `weight ${weight[start].toFixed(3)}` }, part);
        mark.style.background = heatColour(weight[start], max, 0.55);
        box.append(mark);
      }
      start = i;
    }
    return box;
  }

  function tabularTable(payload, explanation) {
    const top = new Map((explanation ? explanation.top : []).map((c) => [c.feature, c.weight]));
    const max = Math.max(0, ...Array.from(top.values(), Math.abs));
    const table = el("table", { class: "kv" });
    for (const [key, value] of Object.entries(payload)) {
      const w = top.get(key);
      const row = el("tr", {}, el("th", {}, key), el("td", {}, typeof value === "object" ? JSON.stringify(value) : String(value)));
      const mark = el("td", { class: "why" });
      if (w !== undefined) {
        if (Math.abs(w) >= 0.25 * max) row.classList.add("pushed"); // the features that matter
        mark.append(bar(Math.abs(w) / (max || 1), heatColour(w, max, 0.9)), ` ${w >= 0 ? "+" : "−"}${Math.abs(w).toFixed(2)}`);
      }
      row.append(mark);
      table.append(row);
    }
    return table;
  }

  function bar(fraction, colour) {
    const outer = el("span", { class: "bar" });
    const inner = el("span", { class: "fill" });
    inner.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    if (colour) inner.style.background = colour;
    outer.append(inner);
    return outer;
  }

  // An image file the item references (imageUrl serves it): fitted to its box, zoomed with the
  // wheel or + and -, dragged to pan; the explanation's heat grid (if any) laid over it with h.
  // A preview (the server's 1024 px thumbnail) shows first; the original replaces it once
  // zooming asks for more pixels than the preview has.
  const PREVIEW = 1024;
  let activeZoom = null;
  function zoomableImage(src, heat) {
    const box = el("div", { class: "zoom-box", title: "wheel or + / − to zoom, drag to pan" });
    Object.assign(box.style, { position: "relative", overflow: "hidden", width: "min(640px, 55vw)", height: "min(65vh, 560px)",
      background: "#2a2f3a", cursor: "grab", userSelect: "none", touchAction: "none", borderRadius: "6px" });
    const stage = el("div", { class: "zoom-stage" });
    // hidden until the first fit, so a re-drawn item never flashes at its natural size
    Object.assign(stage.style, { position: "absolute", left: "0", top: "0", transformOrigin: "0 0", visibility: "hidden" });
    const img = el("img", { src: `${src}?size=${PREVIEW}`, alt: "the item's image", draggable: "false", class: "item-image" });
    img.style.display = "block";
    const overlay = el("canvas", { class: "heat-overlay" });
    Object.assign(overlay.style, { position: "absolute", left: "0", top: "0", width: "100%", height: "100%", pointerEvents: "none", imageRendering: "pixelated" });
    overlay.hidden = true;
    stage.append(img, overlay);
    box.append(stage);
    const level = el("span", { class: "zoom-level muted small" });
    const view = el("div", { class: "image-item zoomable" }, box, el("div", { class: "zoom-bar small muted" },
      el("button", { type: "button", title: "zoom out (-)", onclick: () => zoom(0.8) }, "−"),
      el("button", { type: "button", title: "zoom in (+)", onclick: () => zoom(1.25) }, "+"),
      el("button", { type: "button", title: "fit the box", onclick: () => fit() }, "Fit"), level));
    let scale = 1, x = 0, y = 0, fitted = 1, source = "preview", swap = null;
    const apply = () => {
      stage.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
      stage.style.visibility = "visible";
      img.style.imageRendering = scale >= 2 ? "pixelated" : "auto";
      const of = source === "full" ? "" : " (preview)";
      level.textContent = ` ${Math.round(scale * 100)}% of ${img.naturalWidth}×${img.naturalHeight}${of}`;
      view.dataset.scale = scale.toFixed(6);
      view.dataset.source = source;
      if (scale > 1 && source === "preview" && Math.max(img.naturalWidth, img.naturalHeight) >= PREVIEW) original();
    };
    // Swap the preview for the original at the same size on screen (a smaller image is its own preview).
    function original() {
      source = "loading";
      const full = new Image();
      full.src = src;
      full.decode().then(() => {
        swap = img.naturalWidth / full.naturalWidth;
        img.src = src; // the load handler rescales once the original is in
      }, () => (source = "preview"));
    }
    function fit() {
      const w = img.naturalWidth, h = img.naturalHeight, bw = box.clientWidth, bh = box.clientHeight;
      if (!w || !h) return;
      if (!bw || !bh) return requestAnimationFrame(fit); // not laid out yet
      scale = fitted = Math.min(bw / w, bh / h);
      x = (bw - w * scale) / 2;
      y = (bh - h * scale) / 2;
      apply();
    }
    function zoom(factor, cx = box.clientWidth / 2, cy = box.clientHeight / 2) {
      const next = Math.min(Math.max(scale * factor, fitted / 8), Math.max(64, fitted * 8));
      x = cx - ((cx - x) * next) / scale;
      y = cy - ((cy - y) * next) / scale;
      scale = next;
      apply();
    }
    box.addEventListener("wheel", (event) => {
      event.preventDefault();
      const r = box.getBoundingClientRect();
      zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - r.left, event.clientY - r.top);
    }, { passive: false });
    let drag = null;
    box.addEventListener("pointerdown", (event) => {
      drag = { px: event.clientX, py: event.clientY, x, y };
      box.setPointerCapture(event.pointerId);
      box.style.cursor = "grabbing";
    });
    box.addEventListener("pointermove", (event) => {
      if (!drag) return;
      x = drag.x + event.clientX - drag.px;
      y = drag.y + event.clientY - drag.py;
      apply();
    });
    const stop = () => { drag = null; box.style.cursor = "grab"; };
    box.addEventListener("pointerup", stop);
    box.addEventListener("pointercancel", stop);
    box.addEventListener("dblclick", () => fit());
    new ResizeObserver(() => scale === fitted && fit()).observe(box); // still fitted: stays fitted
    let side = null;
    // The heat grid over the image: at once, or when it arrives later (the view, zoom and pan stay).
    const paintHeat = (grid) => {
      side = grid ? pixelGrid(grid) : null;
      if (!side) return;
      overlay.width = side;
      overlay.height = side;
      const ctx = overlay.getContext("2d");
      const max = Math.max(...grid.map(Math.abs));
      grid.forEach((w, j) => {
        ctx.fillStyle = heatColour(w, max, 0.6);
        ctx.fillRect(j % side, Math.floor(j / side), 1, 1);
      });
    };
    paintHeat(heat);
    img.addEventListener("load", () => {
      if (swap !== null) { // the original replaced the preview: the same view, finer pixels
        [scale, fitted, swap, source] = [scale * swap, fitted * swap, null, "full"];
        return apply();
      }
      fit();
    });
    img.addEventListener("error", () => view.replaceChildren(el("p", { class: "error" },
      "The image could not be loaded: moved, deleted, unreadable or outside the project's media roots.")));
    activeZoom = { zoom, fit };
    return { view, heatToggle: (on) => (overlay.hidden = !(on && side)), explain: (e) => paintHeat(e && e.heat) };
  }

  // A conversation (task rubric / preference): the turns in a scrolling pane that starts at the
  // latest turn, then the model's answer to rate — or answers A and B side by side.
  function conversation(payload, pairwise) {
    const turns = el("ol", { class: "chat-turns", id: "chat-turns", tabindex: "0" });
    for (const t of payload.turns || []) {
      turns.append(el("li", { class: `turn role-${t.role}` }, el("span", { class: "role" }, t.role), el("div", { class: "content" }, String(t.content))));
    }
    const answer = (title, text, id) => el("div", { class: "chat-answer", id }, el("h4", {}, title), el("div", { class: "content" }, String(text ?? "")));
    const answers = pairwise
      ? el("div", { class: "chat-pair" }, answer("Answer A", payload.answer_a, "answer-a"), answer("Answer B", payload.answer_b, "answer-b"))
      : answer("The model's answer", payload.answer, "answer");
    const view = el("div", { class: "chat-item" }, el("div", { class: "small muted" }, `${(payload.turns || []).length} turns`), turns, answers);
    requestAnimationFrame(() => (turns.scrollTop = turns.scrollHeight));
    return { view, heatToggle: () => {} };
  }

  // The item as its modality needs: {view, heatToggle(on)} — heatToggle redraws an image overlay;
  // an image file's view also has explain(explanation), which lays its heat over the view in place.
  // imageUrl: where the server serves the image an item references by path or URL.
  // shapes (task spans / boxes): the spans or boxes to start from (the model's, or a consensus).
  // others: earlier answers [{who, shapes}] the editor shows (review).
  function item(config, payload, explanation, imageUrl = null, shapes = [], others = []) {
    if (config.task === "spans") return spans.editor(config, String(payload[config.input_field || "text"] ?? ""), shapes, others);
    if (config.task === "boxes") return boxes.editor(config, imageUrl, shapes, others);
    if (config.task === "rubric" || config.task === "preference") return conversation(payload, config.task === "preference");
    const key = config.input_field || { image: "pixels", text: "text" }[config.modality] || "features";
    if (config.modality === "image" && typeof payload[key] === "string" && imageUrl) {
      return zoomableImage(imageUrl, explanation && explanation.heat);
    }
    if (config.modality === "image") {
      const values = (payload[key] || []).flat(Infinity).map(Number);
      const holder = el("div", { class: "image-item" });
      const heat = explanation && explanation.heat;
      const draw = (on) => holder.replaceChildren(imageCanvas(values, 288, on && heat ? heat : null));
      draw(false);
      return { view: holder, heatToggle: draw };
    }
    if (config.modality === "text") {
      return { view: highlightedText(String(payload[key] ?? ""), explanation), heatToggle: () => {} };
    }
    return { view: tabularTable(payload, explanation), heatToggle: () => {} };
  }

  // A label set's canonical JSON text as a reader wants it: "billing, urgent" (or "no label").
  function setText(label) {
    const set = setOf(label);
    return set ? set.join(", ") || "no label" : label;
  }

  function setOf(label) {
    try {
      const set = JSON.parse(label);
      return Array.isArray(set) ? set : null;
    } catch {
      return null;
    }
  }

  // The model's suggestion, confidence and the list of what pushed it; or, on a task answered
  // blind (an audit), that it is hidden.
  function suggestion(config, pred, explanation, payload = null, hidden = false) {
    const box = el("div", { class: "suggestion" });
    if (hidden) {
      box.append(el("p", { class: "muted", id: "model-hidden" }, "The model's suggestion is hidden on this task: answer on your own."));
      return box;
    }
    if (config.task === "spans" || config.task === "boxes") { // the proposals are drawn on the item
      const shapes = spans.proposed(pred, payload), what = config.task === "spans" ? "span" : "box";
      const many = shapes.length === 1 ? what : `${what}${what === "box" ? "es" : "s"}`;
      const least = Math.min(...shapes.map((s) => (s.score == null ? 1 : s.score)));
      box.append(el("p", { class: shapes.length ? "" : "muted", id: "proposal-summary" }, shapes.length
        ? `The model proposes ${shapes.length} ${many} (dashed); the least sure at ${pct(least)}.`
        : `No ${what === "box" ? "boxes" : "spans"} proposed by the model for this item.`));
      return box;
    }
    if (!pred || pred.label == null) {
      box.append(el("p", { class: "muted" }, "No model suggestion for this item."));
      return box;
    }
    const shown = config.task === "multilabel" ? setText(pred.label) : pred.label;
    box.append(
      el("div", { class: "suggested" }, "Model suggests ", el("strong", { class: "big", id: "suggested-label" }, shown),
        el("span", { class: "conf" }, ` ${pct(pred.confidence)} sure`)),
      bar(pred.confidence),
    );
    if (!explanation) {
      box.append(el("p", { class: "muted small" }, "No explanation available."));
      return box;
    }
    const how = explanation.method === "linear" ? "model weights × this item" : "masking one feature at a time";
    const set = config.task === "multilabel" ? setOf(pred.label) : null; // explained: one label of the set
    const who = (set ? set.includes(explanation.label) : explanation.label === pred.label) ? "the model" : "today's model";
    box.append(el("h4", {}, `What pushed ${who} to ${explanation.label} `, el("span", { class: "muted small" }, `(${how})`)));
    if (explanation.heat && config.modality === "image") {
      box.append(el("div", { class: "heat-row" }, heatCanvas(explanation.heat),
        el("p", { class: "small muted" }, el("span", { class: "swatch red" }), " this cell (ink or blank) pushes to ", explanation.label,
          el("br"), el("span", { class: "swatch blue" }), " pushes away from it", el("br"), "Press ", el("kbd", {}, "h"), " to lay it over the image.")));
    }
    const max = Math.max(...explanation.top.map((c) => Math.abs(c.weight)), 1e-12);
    const list = el("ul", { class: "why-list" });
    for (const c of explanation.top.slice(0, 6)) {
      list.append(el("li", {}, bar(Math.abs(c.weight) / max, heatColour(c.weight, max, 0.9)),
        el("span", { class: "feat" }, c.feature), el("span", { class: "w" }, `${c.weight >= 0 ? "+" : "−"}${Math.abs(c.weight).toFixed(2)}`)));
    }
    box.append(list);
    return box;
  }

  // Markdown-ish guidelines: "# " headings, "- " bullets, other lines paragraphs (text only).
  function guidelines(text) {
    const box = el("div", { class: "guidelines" });
    if (!text || !text.trim()) {
      box.append(el("p", { class: "muted" }, "This project has no written guidelines yet."));
      return box;
    }
    let list = null;
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line) { list = null; continue; }
      if (line.startsWith("- ") || line.startsWith("* ")) {
        if (!list) box.append((list = el("ul")));
        list.append(el("li", {}, line.slice(2)));
        continue;
      }
      list = null;
      const heading = line.match(/^#+\s+(.*)$/);
      box.append(heading ? el("h4", {}, heading[1]) : el("p", {}, line));
    }
    return box;
  }

  // The row of label buttons with their keys; onPick(label) on click.
  // multi: checkbox keys (task multilabel): each key ticks or unticks its label.
  function labelButtons(labels, onPick, multi = false) {
    const row = el("div", { class: multi ? "labels multi" : "labels", id: "labels" });
    const own = ownKeys(labels); // the key is the label itself: show it once
    labels.forEach((label, i) => {
      const text = own ? [label] : [el("kbd", {}, keyFor(labels, i)), ` ${label}`];
      const attrs = { "data-label": label, title: `key ${keyFor(labels, i)}`, onclick: () => onPick(label) };
      if (multi) Object.assign(attrs, { role: "checkbox", "aria-checked": "false" });
      row.append(el("button", attrs, ...text));
    });
    return row;
  }

  // selected: one label, or a Set of them (task multilabel: every ticked box)
  function markSelected(selected) {
    for (const b of document.querySelectorAll("#labels button")) {
      const on = selected instanceof Set ? selected.has(b.dataset.label) : b.dataset.label === selected;
      b.classList.toggle("selected", on);
      if (selected instanceof Set) b.setAttribute("aria-checked", String(on));
    }
  }

  const typing = (event) => ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);

  // + and - zoom the image on show (the wheel too); they are never label keys.
  document.addEventListener("keydown", (event) => {
    if (!activeZoom || !activeZoom.fit || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    const factor = { "+": 1.25, "=": 1.25, "-": 0.8, _: 0.8 }[event.key];
    if (!factor || !document.querySelector(".zoomable")) return;
    event.preventDefault();
    activeZoom.zoom(factor);
  });

  // A structured editor's keys (spans, boxes): the one on screen takes them, unless the person is
  // typing in a field or reading the help. ``current`` returns the editor (view, key) or null.
  function editorKeys(current) {
    document.addEventListener("keydown", (event) => {
      const editor = current();
      if (!editor || !document.contains(editor.view) || typing(event)) return;
      const help = document.getElementById("help");
      if (help && !help.hidden) return;
      if (editor.key(event)) event.preventDefault();
    });
  }

  function notice(message, kind = "info") {
    const box = document.getElementById("notice");
    if (!box) return;
    box.className = `notice ${kind}`;
    box.textContent = message;
    box.hidden = !message;
  }

  // The keyboard help overlay: show, hide, or (no argument) flip.
  function toggleHelp(on) {
    const help = document.getElementById("help");
    help.hidden = on === undefined ? !help.hidden : !on;
  }

  // -- leases: kept alive while the person works on a visible page ------------------------------

  const ACTIVE_MS = 60000; // working: a key, click, move or scroll within the last minute
  let lastActive = Date.now();
  for (const type of ["keydown", "mousemove", "mousedown", "wheel"]) {
    document.addEventListener(type, () => (lastActive = Date.now()), { capture: true, passive: true });
  }
  const working = () => document.visibilityState === "visible" && Date.now() - lastActive < ACTIVE_MS;

  // How long the lease of `held` ({deadline}) has left, in `box`; empty without one.
  function showLease(box, held) {
    if (!held) {
      box.textContent = "";
      return;
    }
    const left = Math.max(0, Math.round((held.deadline - Date.now()) / 1000));
    const state = working() ? " · extends while you work" : " · paused while you are away";
    box.textContent = `Lease: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left${state}`;
    box.classList.toggle("warn", left < 30);
  }

  // Extend the lease of `held` ({assignment, seconds, deadline}) while the person works, once less
  // than a minute (or half its length) is left. False when the server says it already expired.
  async function keepLease(held) {
    const sent = Date.now();
    if (!held || !working() || held.deadline - sent > Math.min(60000, (held.seconds * 1000) / 2)) return true;
    try {
      await lw.api("POST", `/v1/leases/${held.assignment.lease.id}/extend`, { seconds: Math.round(held.seconds) });
      held.deadline = sent + held.seconds * 1000;
      return true;
    } catch (e) {
      return e.status !== 409;
    }
  }

  // An item's name: its external id, or "#id" where the caller's view leaves the id out (blind review).
  const itemName = (item) => (item.external_id == null ? `#${item.id}` : item.external_id);

  // Release leases on unload with a keepalive request (the session cookie and the CSRF header).
  function releaseOnUnload(leaseIds) {
    for (const id of leaseIds) {
      fetch(`/v1/leases/${id}/release`, { method: "POST", keepalive: true, credentials: "same-origin", headers: lw.HEADERS });
    }
  }

  return { KEYS, itemName, keyFor, labelForKey, item, suggestion, guidelines, labelButtons, markSelected, typing, editorKeys, notice, bar, pct, releaseOnUnload, toggleHelp, showLease, keepLease };
})();
