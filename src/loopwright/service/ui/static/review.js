// loopwright UI: the reviewer / expert view. Disputed and escalated tasks (tier 2 and up) with
// every earlier annotation, the annotators' skill, the model's suggestion and the consensus
// posterior; one key press resolves, with an optional reason.
"use strict";

(async () => {
  const { api, el } = lw;
  const ctx = await lw.boot("review");
  const name = encodeURIComponent(ctx.project);
  const POLL_MS = 4000;

  const [config, guide] = await Promise.all([
    api("GET", `/v1/projects/${name}/config`),
    api("GET", `/v1/projects/${name}/guidelines`),
  ]);
  const labels = config.labels;
  const mine = ctx.membership && ctx.membership.tiers ? ctx.membership.tiers : config.tiers.map((t) => t.tier);
  const tiers = mine.filter((t) => t >= 2);
  document.getElementById("guidelines").replaceChildren(render.guidelines(guide.guidelines));
  const multi = config.task === "multilabel"; // label keys tick a set; Enter resolves with the set
  const toggle = (l) => {
    const set = new Set(selected instanceof Set ? selected : []);
    set.has(l) ? set.delete(l) : set.add(l);
    select(set);
  };
  document.getElementById("label-area").replaceChildren(render.labelButtons(labels, (l) => (multi ? toggle(l) : resolve(l)), multi));
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
    const [context, explanation] = await Promise.all([
      api("GET", `/v1/projects/${name}/tasks/${a.task.id}/context`),
      api("GET", `/v1/projects/${name}/items/${a.item.id}/explanation?k=8`).catch(() => null),
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
    document.getElementById("key-hint").textContent = current.needs > 1 ? "label key records your vote" : "label key resolves";
    current.item = render.item(config, a.item.payload, explanation, `/v1/projects/${name}/items/${a.item.id}/image`);
    document.getElementById("item").replaceChildren(current.item.view);
    document.getElementById("suggestion").replaceChildren(render.suggestion(config, a.suggestion, explanation));
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
    // A clear posterior mode is preselected; a tie (or nothing yet) waits for a label key.
    const clear = ranked[0][1] > 0 && !(ranked.length > 1 && ranked[1][1] === ranked[0][1]);
    const consensus = clear ? ranked[0][0] : null;
    for (const b of document.querySelectorAll("#labels button")) b.classList.toggle("consensus", b.dataset.label === consensus);
    select(multi ? new Set(consensus ? JSON.parse(consensus) : []) : consensus || null);
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
    render.markSelected(label);
    const chosen = document.getElementById("chosen");
    if (label instanceof Set) {
      const text = label.size ? [...label].sort().join(", ") : "none";
      return chosen.replaceChildren(el("span", {}, "Marked set: ", el("strong", { class: "big", id: "chosen-set" }, text), " — label keys tick and untick, ", el("kbd", {}, "Enter"), " resolves"));
    }
    chosen.replaceChildren(label ? el("span", {}, "Marked: ", el("strong", { class: "big" }, label), " — ", el("kbd", {}, "Enter"), current && current.needs > 1 ? " records your vote" : " resolves") : el("span", { class: "warn" }, "No consensus: press the key of the label you decide on."));
  }

  async function resolve(label) {
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
      else carry = [`Recorded ${label instanceof Set ? body.label.join(", ") || "no labels" : label} for item ${render.itemName(a.item)}; it waits for more reviewers.`, "ok"];
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

  async function heartbeat() {
    const held = current;
    render.showLease(document.getElementById("lease"), held);
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
    if (label !== null) multi ? toggle(label) : resolve(label);
  });
  window.addEventListener("pagehide", () => current && render.releaseOnUnload([current.assignment.lease.id]));

  if (!tiers.length) {
    render.notice("You review no tier above 1 in this project; the Annotate page has your work.", "warn");
    return;
  }
  setInterval(heartbeat, 1000);
  await next();
})().catch((e) => lw.showError(e.message));
