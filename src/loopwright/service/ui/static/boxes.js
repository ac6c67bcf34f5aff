// loopwright UI: the box editor (task boxes). The image, zoomable, with an SVG overlay in image
// pixels: drag draws a box, click or Tab selects one, arrows move it (shift: 10 px), alt+arrows
// move its right / bottom edge and ctrl+arrows its left / top edge, a label key relabels it, Delete removes it, h hides the model's boxes. The
// answer is [{x, y, w, h, label}] in the image's own pixels (tasks/boxes.py), whatever the zoom.
"use strict";

const boxes = (() => {
  const { el } = lw;
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs = {}) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };
  const STROKES = ["#e8590c", "#1c7ed6", "#2f9e44", "#c2255c", "#7048e8", "#e67700", "#0c8599", "#5c940d", "#495057", "#f03e3e"];
  const stroke = (labels, label) => STROKES[Math.max(0, labels.indexOf(label)) % STROKES.length];
  const pct = (p) => `${Math.round(p * 100)}%`;
  let active = null;

  // A box editor over the image at `src` (its original, so pixels are the image's own);
  // `others`: earlier answers [{who, shapes}], drawn thin and dotted, with a button to start from one.
  function editor(config, src, initial, others = []) {
    const labels = config.labels;
    let items = initial.map((b) => ({ x: +b.x, y: +b.y, w: +b.w, h: +b.h, label: b.label, score: b.score ?? null, model: b.score != null }));
    let sel = null, drawLabel = labels[0], modelHidden = false, message = "";
    let W = 0, H = 0, scale = 1, fitted = 1, ox = 0, oy = 0, gesture = null, space = false;

    const frame = el("div", { class: "box-frame", id: "box-frame", tabindex: "0" });
    const stage = el("div", { class: "box-stage" });
    const img = el("img", { src, alt: "the item's image", draggable: "false", class: "item-image" });
    const layer = svg("svg", { class: "box-layer", id: "box-layer" });
    stage.append(img, layer);
    frame.append(stage);
    const level = el("span", { class: "zoom-level small muted" });
    const bar = el("div", { class: "zoom-bar small muted" },
      el("button", { type: "button", title: "zoom out (-)", onclick: () => zoom(0.8) }, "−"),
      el("button", { type: "button", title: "zoom in (+)", onclick: () => zoom(1.25) }, "+"),
      el("button", { type: "button", title: "fit the image in the box", onclick: () => fit() }, "Fit"), level);
    const status = el("div", { class: "shape-status small", id: "shape-status" });
    const list = el("ol", { class: "shape-list", id: "shape-list" });
    const hints = el("div", { class: "shape-hints small muted" },
      "Drag to draw · click or ", el("kbd", {}, "Tab"), " selects · ", el("kbd", {}, "←↑↓→"), " move (", el("kbd", {}, "shift"),
      " 10 px) · ", el("kbd", {}, "alt"), "+arrows move its right / bottom edge, ", el("kbd", {}, "ctrl"), "+arrows its left / top edge · label key relabels (or picks the label to draw) · ",
      el("kbd", {}, "Del"), " removes · ", el("kbd", {}, "h"), " hides the model's boxes · wheel or ", el("kbd", {}, "+"), el("kbd", {}, "−"),
      " zoom, ", el("kbd", {}, "space"), "+drag pans");
    const describe = (b) => `${b.label} (${b.x}, ${b.y}) ${b.w}×${b.h}`;
    const view = el("div", { class: "image-item box-editor" }, frame, bar, status, list, spans.earlier(others, describe, use), hints);

    const shown = () => items.map((b, i) => i).filter((i) => !(modelHidden && items[i].model));
    const clamp = (v, a, b) => Math.min(Math.max(v, a), b);

    function draw() {
      const nodes = [];
      const font = 13 / scale;
      for (const o of others) {
        for (const b of o.shapes) {
          const g = svg("g", { class: "other" });
          g.append(svg("rect", { x: b.x, y: b.y, width: b.w, height: b.h }));
          const text = svg("text", { x: b.x, y: b.y + b.h + 12 / scale, "font-size": font * 0.9 });
          text.textContent = `${o.who}: ${b.label}`;
          g.append(text);
          nodes.push(g);
        }
      }
      items.forEach((b, i) => {
        if (modelHidden && b.model) return;
        const g = svg("g", { class: `box${i === sel ? " on" : ""}${b.model ? " model" : ""}`, "data-i": i });
        const colour = stroke(labels, b.label);
        g.append(svg("rect", { x: b.x, y: b.y, width: b.w, height: b.h, stroke: colour, "data-i": i }));
        const text = svg("text", { x: b.x, y: b.y - 3 / scale, fill: colour, "font-size": font, "data-i": i });
        text.textContent = `${b.label}${b.model && b.score != null ? ` ${pct(b.score)}` : ""}`;
        g.append(text);
        nodes.push(g);
      });
      if (gesture && gesture.kind === "draw" && gesture.box) {
        const b = gesture.box;
        nodes.push(svg("rect", { class: "drawing", x: b.x, y: b.y, width: b.w, height: b.h, stroke: stroke(labels, drawLabel) }));
      }
      layer.replaceChildren(...nodes);
      list.replaceChildren(...items.map((b, i) => {
        const who = b.model ? `model ${b.score == null ? "" : pct(b.score)}` : "yours";
        const row = el("li", { "data-i": String(i), class: `${i === sel ? "on" : ""}${modelHidden && b.model ? " hidden-box" : ""}`, onclick: () => select(i) },
          el("span", { class: "swatch" }), el("strong", {}, b.label), ` x ${b.x} y ${b.y} · ${b.w}×${b.h} px `, el("span", { class: "muted" }, who));
        row.firstChild.style.background = stroke(labels, b.label);
        return row;
      }));
      const hidden = items.filter((b) => b.model).length;
      const what = sel !== null
        ? `Box ${sel + 1} of ${items.length}: ${items[sel].label} at (${items[sel].x}, ${items[sel].y}), ${items[sel].w}×${items[sel].h} px`
        : `${items.length} box${items.length === 1 ? "" : "es"} · new boxes get ${drawLabel} · Enter submits`;
      status.replaceChildren(el("span", {}, what),
        modelHidden && hidden ? el("span", { class: "muted" }, ` · ${hidden} model box${hidden === 1 ? "" : "es"} hidden (still in the answer; h shows them)`) : "",
        message ? el("span", { class: "warn" }, ` · ${message}`) : "");
      message = "";
      view.dataset.boxes = JSON.stringify(value());
      view.dataset.modelHidden = String(modelHidden);
    }

    function apply() {
      stage.style.transform = `translate(${ox}px, ${oy}px) scale(${scale})`;
      img.style.imageRendering = scale >= 2 ? "pixelated" : "auto";
      level.textContent = ` ${Math.round(scale * 100)}% of ${W}×${H}`;
      view.dataset.scale = scale.toFixed(6);
      draw();
    }
    function fit() {
      const bw = frame.clientWidth, bh = frame.clientHeight;
      if (!W || !H) return;
      if (!bw || !bh) return requestAnimationFrame(fit);
      scale = fitted = Math.min(bw / W, bh / H);
      ox = (bw - W * scale) / 2;
      oy = (bh - H * scale) / 2;
      apply();
    }
    function zoom(factor, cx = frame.clientWidth / 2, cy = frame.clientHeight / 2) {
      const next = clamp(scale * factor, fitted / 8, Math.max(64, fitted * 8));
      ox = cx - ((cx - ox) * next) / scale;
      oy = cy - ((cy - oy) * next) / scale;
      scale = next;
      apply();
    }

    // Screen point to image pixel (rounded, inside the image): the image's own box on screen.
    function toImage(event) {
      const r = img.getBoundingClientRect();
      return [clamp(Math.round(((event.clientX - r.left) * W) / r.width), 0, W), clamp(Math.round(((event.clientY - r.top) * H) / r.height), 0, H)];
    }

    function select(i) {
      const order = shown();
      sel = i === null || !order.length ? null : i;
      draw();
    }

    function pick(label) {
      if (sel !== null) Object.assign(items[sel], { label, model: false });
      else drawLabel = label;
      draw();
    }

    function use(k) {
      items = others[k].shapes.map((b) => ({ x: +b.x, y: +b.y, w: +b.w, h: +b.h, label: b.label, score: null, model: false }));
      sel = null;
      draw();
    }

    function remove() {
      if (sel === null) return;
      items.splice(sel, 1);
      sel = null;
      draw();
    }

    // Arrows: move the box by `dx, dy` (how "move"), or only its right / bottom edge ("far") or
    // its left / top edge ("near"); a box keeps at least 1 px each way and stays in the image.
    function nudge(dx, dy, how) {
      const b = items[sel];
      if (how === "far") {
        b.w = clamp(b.w + dx, 1, W - b.x);
        b.h = clamp(b.h + dy, 1, H - b.y);
      } else if (how === "near") {
        const [right, bottom] = [b.x + b.w, b.y + b.h];
        b.x = clamp(b.x + dx, 0, right - 1);
        b.y = clamp(b.y + dy, 0, bottom - 1);
        [b.w, b.h] = [right - b.x, bottom - b.y];
      } else {
        b.x = clamp(b.x + dx, 0, W - b.w);
        b.y = clamp(b.y + dy, 0, H - b.h);
      }
      b.model = false;
      draw();
    }

    const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    function key(event) {
      const k = event.key;
      if (k === " ") return (space = true), true;
      if (ARROWS[k]) {
        if (sel === null) return false;
        const step = event.shiftKey ? 10 : 1;
        nudge(ARROWS[k][0] * step, ARROWS[k][1] * step, event.altKey ? "far" : event.ctrlKey ? "near" : "move");
        return true;
      }
      if (k === "Tab") {
        const order = shown();
        if (!order.length) return false;
        const at = order.indexOf(sel);
        const next = at < 0 ? (event.shiftKey ? order.length - 1 : 0) : (at + (event.shiftKey ? -1 : 1) + order.length) % order.length;
        return select(order[next]), true;
      }
      if (event.ctrlKey || event.altKey || event.metaKey) return false;
      if (k === "Delete" || k === "Backspace") return remove(), true;
      if (k === "Escape") return select(null), true;
      const factor = { "+": 1.25, "=": 1.25, "-": 0.8, _: 0.8 }[k];
      if (factor) return zoom(factor), true;
      return false;
    }

    frame.addEventListener("wheel", (event) => {
      event.preventDefault();
      const r = frame.getBoundingClientRect();
      zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - r.left, event.clientY - r.top);
    }, { passive: false });
    frame.addEventListener("pointerdown", (event) => {
      frame.focus({ preventScroll: true });
      frame.setPointerCapture(event.pointerId);
      const hit = event.target.closest && event.target.closest("[data-i]");
      if (event.button === 1 || space) gesture = { kind: "pan", px: event.clientX, py: event.clientY, ox, oy };
      else if (hit) {
        const i = Number(hit.dataset.i);
        const [x, y] = toImage(event);
        gesture = { kind: "move", i, x, y, bx: items[i].x, by: items[i].y, moved: false };
        select(i);
      } else {
        const [x, y] = toImage(event);
        gesture = { kind: "draw", x, y, box: null };
      }
      event.preventDefault();
    });
    frame.addEventListener("pointermove", (event) => {
      if (!gesture) return;
      if (gesture.kind === "pan") {
        ox = gesture.ox + event.clientX - gesture.px;
        oy = gesture.oy + event.clientY - gesture.py;
        return apply();
      }
      const [x, y] = toImage(event);
      if (gesture.kind === "move") {
        const b = items[gesture.i];
        b.x = clamp(gesture.bx + x - gesture.x, 0, W - b.w);
        b.y = clamp(gesture.by + y - gesture.y, 0, H - b.h);
        if (b.x !== gesture.bx || b.y !== gesture.by) (gesture.moved = true), (b.model = false);
      } else {
        gesture.box = { x: Math.min(x, gesture.x), y: Math.min(y, gesture.y), w: Math.abs(x - gesture.x), h: Math.abs(y - gesture.y) };
      }
      draw();
    });
    const end = () => {
      const g = gesture;
      gesture = null;
      if (g && g.kind === "draw") {
        if (g.box && g.box.w >= 2 && g.box.h >= 2) {
          items.push({ ...g.box, label: drawLabel, score: null, model: false });
          sel = items.length - 1;
        } else {
          sel = null;
          if (g.box) message = "too small: drag at least 2 px each way";
        }
      }
      draw();
    };
    frame.addEventListener("pointerup", end);
    frame.addEventListener("pointercancel", end);
    document.addEventListener("keyup", (event) => event.key === " " && (space = false));
    new ResizeObserver(() => scale === fitted && fit()).observe(frame);
    img.addEventListener("load", () => {
      [W, H] = [img.naturalWidth, img.naturalHeight];
      for (const a of [["width", W], ["height", H], ["viewBox", `0 0 ${W} ${H}`]]) layer.setAttribute(a[0], String(a[1]));
      view.dataset.size = `${W}x${H}`;
      fit();
    });
    img.addEventListener("error", () => view.replaceChildren(el("p", { class: "error" },
      "The image could not be loaded: moved, deleted, unreadable or outside the project's media roots.")));

    function value() {
      return items.map((b) => ({ x: b.x, y: b.y, w: b.w, h: b.h, label: b.label }));
    }
    // h on the page: hide (on) or show the model's boxes still as proposed (view only).
    const heatToggle = (on) => {
      modelHidden = on;
      if (sel !== null && modelHidden && items[sel].model) sel = null;
      draw();
    };
    const me = { view, pick, key, value, heatToggle };
    active = me;
    draw();
    return me;
  }

  render.editorKeys(() => active);

  return { editor };
})();
