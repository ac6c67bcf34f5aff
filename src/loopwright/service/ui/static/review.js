// loopwright UI: the reviewer / expert view. Disputed and escalated tasks (tier 2 and up) with
// every earlier annotation, the annotators' skill, the model's suggestion and the consensus
// posterior; one key press resolves, with an optional reason. Opening the page only previews a
// task (a one-minute lease); the first key or click takes it for the tier's whole lease.
"use strict";

(async () => {
  const { api, el } = lw;
  const ctx = await lw.boot("review");
  const name = encodeURIComponent(ctx.project);
  const POLL_MS = 4000;
  const PREVIEW_S = 60; // opening the page holds a task this long; the first key or click takes it

  const [config, guide] = await Promise.all([
    api("GET", `/v1/projects/${name}/config`),
    api("GET", `/v1/projects/${name}/guidelines`),
  ]);
  const labels = config.labels;
  const mine = ctx.membership && ctx.membership.tiers ? ctx.membership.tiers : config.tiers.map((t) => t.tier);
  const tiers = mine.filter((t) => t >= 2);
  document.getElementById("guidelines").replaceChildren(render.guidelines(guide.guidelines));
  const multi = config.task === "multilabel"; // label keys tick a set; Enter resolves with the set
  const shaped = config.task === "spans" || config.task === "boxes"; // label keys mark shapes; Enter resolves with them
  const pick = (l) => current && current.item.pick(l);
  const toggle = (l) => {
    const set = new Set(selected instanceof Set ? selected : []);
    set.has(l) ? set.delete(l) : set.add(l);
    select(set);
  };
  document.getElementById("label-area").replaceChildren(render.labelButtons(labels, (l) => (shaped ? pick(l) : multi ? toggle(l) : resolve(l)), multi));
  document.getElementById("tiers").textContent = `tiers ${tiers.join(", ")}`;
  document.getElementById("help").addEventListener("click", () => render.toggleHelp(false));
  const reason = document.getElementById("reason");

  let current = null; // {assignment, seconds, deadline, item}
  let selected = null;
  let busy = false;
  let heatOn = false;
  let resolved = 0;
  let carry = ["", "info"];

  async function next() {
    current = null;
    let a;
    try {
      a = await api("POST", `/v1/projects/${name}/tasks/next`, { tiers });
    } catch (e) {
      document.getElementById("task-card").hidden = true;
      return render.notice(e.message, "warn");
    }
    if (!a) {
      document.getElementById("task-card").hidden = true;
      render.notice(`${carry[0] ? carry[0] + " " : ""}No disputed or escalated items wait in tiers ${tiers.join(", ")} right now; checking every few seconds.`, carry[1]);
      carry = ["", "info"];
      return setTimeout(next, POLL_MS);
    }
    const seconds = (Date.parse(a.lease.expires_at) - Date.parse(a.lease.created_at)) / 1000;
    current = { assignment: a, seconds, deadline: Date.now() + seconds * 1000 };
    if (seconds > PREVIEW_S) {
      // Only looking: a short lease, made whole by the first key or click (take()).
      await api("POST", `/v1/leases/${a.lease.id}/extend`, { seconds: PREVIEW_S }).then(() => {
        current.preview = true;
        current.deadline = Date.now() + PREVIEW_S * 1000;
      }, () => {});
    }
    const [context, explanation] = await Promise.all([
      api("GET", `/v1/projects/${name}/tasks/${a.task.id}/context`),
      a.model_hidden ? null : api("GET", `/v1/projects/${name}/items/${a.item.id}/explanation?k=8`).catch(() => null),
    ]);
    show(a, context, explanation);
  }

  function show(a, context, explanation) {
    lw.clearError();
    render.notice(carry[0], carry[1]);
    carry = ["", "info"];
    heatOn = false;
    reason.value = "";
    const card = document.getElementById("task-card");
    card.hidden = false;
    card.dataset.taskId = a.task.id;
    card.dataset.leaseId = a.lease.id;
    document.getElementById("task-title").textContent = `Item ${render.itemName(a.item)} · tier ${a.task.tier}`;
    document.getElementById("task-why").textContent = lw.plainWhy(context.why);
    const tier = (config.tiers || []).find((t) => t.tier === a.task.tier);
    current.needs = tier ? tier.required_annotations : 1; // > 1: a key records one vote of several
    document.getElementById("key-hint").textContent = shaped ? "label key marks" : current.needs > 1 ? "label key records your vote" : "label key resolves";
    const shapes = shaped ? startShapes(a, context) : [];
    const others = shaped ? context.annotations.map((x) => ({ who: x.annotator, shapes: JSON.parse(x.label) })) : [];
    current.item = render.item(config, a.item.payload, explanation, `/v1/projects/${name}/items/${a.item.id}/image`, shapes, others);
    document.getElementById("item").replaceChildren(current.item.view);
    document.getElementById("suggestion").replaceChildren(render.suggestion(config, a.suggestion, explanation, a.item.payload, a.model_hidden));
    document.getElementById("method").textContent = `(${context.method.replaceAll("_", " ")})`;
    const ranked = labels.map((l) => [l, context.posterior[l] || 0]).sort((x, y) => y[1] - x[1]);
    const voted = ranked.some(([, p]) => p > 0);
    document.getElementById("posterior").replaceChildren(
      ...(voted
        ? ranked.filter(([, p], i) => i < 3 || p > 0).slice(0, 5).map(([l, p]) =>
            el("li", {}, el("strong", {}, l), render.bar(p), el("span", { class: "w" }, render.pct(p))))
        : [el("li", { class: "muted empty" }, "No votes yet: yours is the first.")]),
    );
    drawVotes(context.annotations);
    if (shaped) document.getElementById("posterior").replaceChildren(el("li", { class: "muted empty" }, "Spans and boxes: the earlier answers are listed under the item."));
    // A clear posterior mode is preselected; a tie (or nothing yet) waits for a label key.
    const clear = ranked[0][1] > 0 && !(ranked.length > 1 && ranked[1][1] === ranked[0][1]);
    const consensus = clear ? ranked[0][0] : null;
    for (const b of document.querySelectorAll("#labels button")) b.classList.toggle("consensus", b.dataset.label === consensus);
    select(multi ? new Set(consensus ? JSON.parse(consensus) : []) : consensus || null);
  }

  // Spans / boxes start from the answer most earlier annotators gave (a strict plurality), else
  // the model's proposals; the earlier answers are listed with a button to start from each.
  function startShapes(a, context) {
    const counts = new Map();
    for (const x of context.annotations) counts.set(x.label, (counts.get(x.label) || 0) + 1);
    const ranked = [...counts.entries()].sort((x, y) => y[1] - x[1]);
    if (ranked.length && !(ranked.length > 1 && ranked[1][1] === ranked[0][1])) return JSON.parse(ranked[0][0]);
    return a.model_hidden ? [] : spans.proposed(a.suggestion, a.item.payload);
  }

  function drawVotes(annotations) {
    const table = document.getElementById("votes");
    const head = el("tr", {}, ...["annotator", "tier", "label", "gold accuracy", "estimated skill"].map((h) => el("th", {}, h)));
    const rows = annotations.map((x) =>
      el("tr", {},
        el("td", {}, x.annotator),
        el("td", {}, String(x.tier)),
        el("td", {}, el("strong", {}, x.label), x.unsure ? el("span", { class: "flag" }, " unsure") : ""),
        el("td", {}, x.gold_accuracy === null ? "no gold answers yet" : `${render.pct(x.gold_accuracy)} of ${x.gold_answers}`),
        el("td", {}, x.estimated_accuracy === null ? "—" : render.pct(x.estimated_accuracy))));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No earlier annotations: the item came here directly.")));
    table.replaceChildren(head, ...rows);
  }

  function select(label) {
    selected = label;
    if (shaped) return document.getElementById("chosen").replaceChildren(el("span", {}, "Correct the shapes, then ", el("kbd", {}, "Enter"), " resolves with them"));
    render.markSelected(label);
    const chosen = document.getElementById("chosen");
    if (label instanceof Set) {
      const text = label.size ? [...label].sort().join(", ") : "none";
      return chosen.replaceChildren(el("span", {}, "Marked set: ", el("strong", { class: "big", id: "chosen-set" }, text), " — label keys tick and untick, ", el("kbd", {}, "Enter"), " resolves"));
    }
    chosen.replaceChildren(label ? el("span", {}, "Marked: ", el("strong", { class: "big" }, label), " — ", el("kbd", {}, "Enter"), current && current.needs > 1 ? " records your vote" : " resolves") : el("span", { class: "warn" }, "No consensus: press the key of the label you decide on."));
  }

  async function resolve(label) {
    if (shaped && current) label = current.item.value(); // the list of spans / boxes
    if (!label && current) return render.notice("No label is marked: press the key of the label you decide on.", "warn");
    if (!current || busy || !label) return;
    busy = true;
    select(label);
    const a = current.assignment;
    const comment = reason.value.trim() || undefined;
    try {
      const body = { label: label instanceof Set ? [...label].sort() : label, comment };
      const result = await api("POST", `/v1/leases/${a.lease.id}/submit`, body);
      resolved += 1;
      document.getElementById("done-count").textContent = String(resolved);
      if (result.resolution) carry = [`Resolved item ${render.itemName(a.item)} as ${result.resolution.label}.`, "ok"];
      else if (result.escalated_to) carry = [`Item ${render.itemName(a.item)} went up to tier ${result.escalated_to.tier}.`, "ok"];
      else carry = [`Recorded ${label instanceof Set ? body.label.join(", ") || "no labels" : shaped ? JSON.stringify(label) : label} for item ${render.itemName(a.item)}; it waits for more reviewers.`, "ok"];
    } catch (e) {
      if (e.status !== 409) {
        busy = false;
        return lw.showError(e.message);
      }
      carry = ["Your time on that task ran out; it went back to the queue.", "warn"];
    }
    reason.blur();
    busy = false;
    await next();
  }

  async function skip() {
    if (!current || busy) return;
    busy = true;
    await api("POST", `/v1/leases/${current.assignment.lease.id}/skip`).catch(() => {});
    carry = ["Skipped.", "info"];
    busy = false;
    await next();
  }

  // The first key or click on a previewed task takes it: the lease grows to the tier's length.
  let idle = false; // a preview ran out unused: nothing is claimed until a key is pressed
  async function take() {
    const held = current;
    if (!held || !held.preview) return;
    held.preview = false;
    await api("POST", `/v1/leases/${held.assignment.lease.id}/extend`, { seconds: Math.round(held.seconds) }).then(
      () => (held.deadline = Date.now() + held.seconds * 1000),
      () => {},
    );
  }
  for (const type of ["keydown", "mousedown"]) document.addEventListener(type, take, { capture: true });

  async function heartbeat() {
    const held = current;
    render.showLease(document.getElementById("lease"), held);
    if (held && held.preview) {
      if (Date.now() < held.deadline || busy) return;
      current = null;
      idle = true;
      document.getElementById("task-card").hidden = true;
      return render.notice("The item went back to the queue while the page was only open. Press any key to review again.", "info");
    }
    if (!(await render.keepLease(held)) && held === current && !busy) {
      carry = ["Your time on that task ran out; here is the next one.", "warn"];
      await next();
    }
  }

  reason.addEventListener("keydown", (event) => {
    if (event.key === "Escape") reason.blur();
    if (event.key === "Enter") resolve(selected);
    event.stopPropagation();
  });

  document.addEventListener("keydown", (event) => {
    if (render.typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (idle) {
      idle = false;
      return next();
    }
    const key = event.key;
    if (key === "?") return render.toggleHelp();
    if (key === "Escape") return render.toggleHelp(false);
    if (!document.getElementById("help").hidden) return;
    if (key === "Enter") {
      event.preventDefault();
      return resolve(selected);
    }
    if (key === "r" || key === "R") {
      event.preventDefault();
      return reason.focus();
    }
    if (key === "s" || key === "S") return skip();
    if ((key === "h" || key === "H") && current && current.item) {
      heatOn = !heatOn;
      return current.item.heatToggle(heatOn);
    }
    const label = render.labelForKey(labels, key);
    if (label !== null) shaped ? pick(label) : multi ? toggle(label) : resolve(label);
  });
  // Leaving gives the lease back; noted per tab too, and released first on a reload (annotate.js).
  const LEFT = "loopwright.leftover-leases";
  window.addEventListener("pagehide", () => {
    const ids = current ? [current.assignment.lease.id] : [];
    sessionStorage.setItem(LEFT, JSON.stringify(ids));
    render.releaseOnUnload(ids);
  });
  const leftover = JSON.parse(sessionStorage.getItem(LEFT) || "[]");
  sessionStorage.removeItem(LEFT);
  await Promise.all(leftover.map((id) => api("POST", `/v1/leases/${id}/release`).catch(() => {})));

  if (!tiers.length) {
    render.notice("You review no tier above 1 in this project; the Annotate page has your work.", "warn");
    return;
  }
  setInterval(heartbeat, 1000);
  await next();
})().catch((e) => lw.showError(e.message));
