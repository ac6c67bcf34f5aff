// loopwright UI: the annotator workspace. One task at a time from the annotator's tier queue,
// keyboard first; the next task is claimed while the current one is shown, so there is no wait.
"use strict";

(async () => {
  const { api, el } = lw;
  const ctx = await lw.boot("annotate");
  const name = encodeURIComponent(ctx.project);
  const SESSION = `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const POLL_MS = 4000;

  const [config, guide] = await Promise.all([
    api("GET", `/v1/projects/${name}/config`),
    api("GET", `/v1/projects/${name}/guidelines`),
  ]);
  const labels = config.labels;
  const multi = config.task === "multilabel"; // a label set: each key ticks a box, Enter submits the set
  const shaped = config.task === "spans" || config.task === "boxes"; // an editor: keys mark shapes, Enter submits them
  document.getElementById("space-hint").hidden = multi || shaped; // one suggested label to accept: none here
  document.getElementById("guidelines").replaceChildren(render.guidelines(guide.guidelines));
  document.getElementById("label-area").replaceChildren(render.labelButtons(labels, (l) => choose(l), multi));
  // task rubric: a corrected answer may go with the rating ("/" to write it, Esc to leave the box)
  const correction = config.task === "rubric" && !(config.rubric && config.rubric.corrections === false)
    ? lw.el("textarea", { id: "correction", rows: "3", placeholder: "Optional: the answer the model should have given (press / to write, Esc to leave)" })
    : null;
  if (correction) {
    document.getElementById("label-area").after(correction);
    correction.addEventListener("keydown", (e) => e.key === "Escape" && correction.blur());
  }
  document.getElementById("help").addEventListener("click", () => render.toggleHelp(false));
  if (ctx.membership && ctx.membership.leaderboard) showLeaderboard(); // if the project turns it on

  // The leaderboard card beside the work (leaderboard.js draws it), refreshed every minute.
  function showLeaderboard() {
    const card = lw.el("div", { class: "card", id: "board-card" }, lw.el("h3", {}, "Leaderboard"));
    const body = lw.el("div", { id: "board", class: "small" });
    card.append(body);
    document.querySelector(".ws-side").append(card);
    const script = lw.el("script", { src: "/ui/static/leaderboard.js" });
    const refresh = () => lwBoard.load(ctx.project, body, ctx.me.name, true).catch(() => card.remove());
    script.addEventListener("load", () => refresh() && setInterval(refresh, 60000));
    document.head.append(script);
  }

  let current = null; // {assignment, seconds, deadline, item}
  let upcoming = null; // Promise<{assignment, seconds, deadline} | {error} | {empty}> claimed in advance
  let upcomingValue = null; // what `upcoming` resolved to, once it has
  let carry = ""; // a message to show with the next task
  let selected = null;
  let unsure = false;
  let busy = false;
  let heatOn = false;
  let pollTimer = null;

  // -- claiming ---------------------------------------------------------------------------------

  function claim() {
    const body = { session_id: SESSION };
    if (ctx.membership && ctx.membership.tiers) body.tiers = ctx.membership.tiers;
    const asked = Date.now();
    return api("POST", `/v1/projects/${name}/tasks/next`, body).then(
      (a) => (a ? withTimer(a, asked) : { empty: true }),
      (error) => ({ error }),
    );
  }

  // Lease length from the server's own timestamps; the countdown runs on this clock.
  function withTimer(assignment, asked) {
    const seconds = (Date.parse(assignment.lease.expires_at) - Date.parse(assignment.lease.created_at)) / 1000;
    return { assignment, seconds, deadline: asked + seconds * 1000 };
  }

  function prefetch() {
    const promise = claim();
    upcoming = promise;
    upcomingValue = null;
    promise.then((v) => {
      if (upcoming === promise) upcomingValue = v;
    });
  }

  function takeUpcoming() {
    const promise = upcoming;
    upcoming = null;
    upcomingValue = null;
    return promise;
  }

  async function next() {
    clearTimeout(pollTimer);
    const got = await (takeUpcoming() || claim());
    if (got.error) return blocked(got.error);
    if (got.empty) return waitForWork();
    show(got);
    prefetch();
  }

  function waitForWork() {
    current = null;
    document.getElementById("lease").textContent = "";
    document.getElementById("task-card").hidden = true;
    render.notice("The queue is empty for your tiers right now. New items appear here by themselves — checking every few seconds.");
    pollTimer = setTimeout(next, POLL_MS);
    refreshSession();
  }

  function blocked(error) {
    current = null;
    document.getElementById("lease").textContent = "";
    document.getElementById("task-card").hidden = true;
    if (error.status === 429) {
      render.notice(`Time for a break: ${error.message}`, "warn");
    } else if (error.status === 403 && error.code === "paused") {
      render.notice(`You are paused on this project: ${error.message}`, "warn");
    } else {
      lw.showError(error.message);
    }
    refreshSession();
  }

  // -- showing a task ---------------------------------------------------------------------------

  function show(got) {
    current = got;
    selected = multi ? new Set() : null;
    if (correction) correction.value = "";
    unsure = false;
    heatOn = false;
    lw.clearError();
    const a = got.assignment;
    const card = document.getElementById("task-card");
    card.hidden = false;
    card.dataset.taskId = a.task.id;
    card.dataset.leaseId = a.lease.id;
    document.getElementById("task-title").textContent = `Item ${render.itemName(a.item)}`;
    document.getElementById("task-why").textContent = lw.plainWhy(a.why);
    drawItem(null);
    updateChoice();
    render.notice(carry, "warn");
    carry = "";
    if (a.model_hidden) return; // answered blind: no suggestion, no explanation
    api("GET", `/v1/projects/${name}/items/${a.item.id}/explanation?k=8`).then(
      (explanation) => current && current.assignment === a && drawItem(explanation),
      () => {}, // no champion yet: the suggestion shows without an explanation
    );
  }

  function drawItem(explanation) {
    const a = current.assignment;
    if (shaped && current.item) return; // the editor keeps its work; its proposals are the suggestion
    if (explanation && current.item && current.item.explain) {
      current.item.explain(explanation); // an image file: its heat laid over the same view, zoom and pan kept
    } else {
      const shapes = shaped && !a.model_hidden ? spans.proposed(a.suggestion, a.item.payload) : [];
      current.item = render.item(config, a.item.payload, explanation, `/v1/projects/${name}/items/${a.item.id}/image`, shapes);
      document.getElementById("item").replaceChildren(current.item.view);
    }
    if (heatOn) current.item.heatToggle(true);
    document.getElementById("suggestion").replaceChildren(render.suggestion(config, a.suggestion, explanation, a.item.payload, a.model_hidden));
  }

  function choose(label) {
    if (!current) return;
    if (shaped) return current.item.pick(label);
    if (multi) selected.has(label) ? selected.delete(label) : selected.add(label);
    else selected = label;
    updateChoice();
  }

  function updateChoice() {
    render.markSelected(selected);
    const chosen = document.getElementById("chosen");
    if (shaped) {
      chosen.className = "";
      chosen.replaceChildren(el("span", {}, "Mark what you see, then ", el("kbd", {}, "Enter"), ` submits your ${config.task}`));
    } else if (multi) {
      const set = [...selected].sort();
      chosen.className = "";
      chosen.replaceChildren(el("span", {}, "Your labels: ", el("strong", { class: "big", id: "chosen-set" }, set.length ? set.join(", ") : "none"), " — keys tick and untick, ", el("kbd", {}, "Enter"), " submits the set"));
    } else {
      chosen.className = selected ? "" : "muted";
      chosen.replaceChildren(selected ? el("span", {}, "Your label: ", el("strong", { class: "big" }, selected), " — press ", el("kbd", {}, "Enter")) : "Choose a label: press its key.");
    }
    document.getElementById("unsure-flag").hidden = !unsure;
  }

  // -- submitting, skipping ---------------------------------------------------------------------

  // One key answers with the model's suggested label (one label per item; a blind task has none).
  function acceptSuggestion() {
    const pred = current && current.assignment.suggestion;
    if (multi || shaped || !pred || pred.label == null) {
      return render.notice("There is no suggested label to accept here: choose a label with its key.", "warn");
    }
    selected = pred.label;
    updateChoice();
    return submit(false);
  }

  async function submit(asUnsure) {
    if (!current || busy) return;
    if (shaped) selected = current.item.value(); // the list of spans / boxes (may be empty)
    if (!selected) {
      render.notice(asUnsure ? "Marked unsure — now choose a label (its key), then Enter." : "Choose a label first: press the key shown on its button.", "warn");
      unsure = unsure || asUnsure;
      updateChoice();
      return;
    }
    const body = { label: multi ? [...selected].sort() : selected, unsure: unsure || asUnsure };
    if (correction && correction.value.trim()) body.comment = correction.value.trim();
    await act(() => api("POST", `/v1/leases/${current.assignment.lease.id}/submit`, body));
  }

  async function skip() {
    if (!current || busy) return;
    await act(() => api("POST", `/v1/leases/${current.assignment.lease.id}/skip`));
  }

  async function act(call) {
    busy = true;
    try {
      await call();
    } catch (e) {
      if (e.code === "lease_expired") carry = "Your time on that item ran out, so it went back to the queue; here is the next one.";
      else if (e.status === 409) carry = `That item was not saved: ${e.message}. Here is the next one.`;
      else { lw.showError(e.message); busy = false; return; }
    }
    const stats = await refreshSession();
    busy = false;
    if (stats && (stats.remaining_session === 0 || stats.remaining_hour === 0)) {
      const pending = await (takeUpcoming() || Promise.resolve({}));
      if (pending.assignment) await api("POST", `/v1/leases/${pending.assignment.lease.id}/release`).catch(() => {});
      return blocked({ status: 429, message: stats.remaining_session === 0 ? `you reached the cap of ${stats.max_per_session} items this session. After your break, reload the page (F5) to start a new session.` : `you reached the cap of ${stats.max_per_hour} items per hour.` });
    }
    await next();
  }

  // -- session progress and the lease timer -----------------------------------------------------

  async function refreshSession() {
    let s;
    try {
      s = await api("GET", `/v1/projects/${name}/session?session_id=${SESSION}`);
    } catch {
      return null;
    }
    const box = document.getElementById("progress");
    const done = s.done_this_session || 0;
    const rows = [el("div", { class: "big-number", id: "done-count" }, String(done), el("span", { class: "muted small" }, " done this session"))];
    if (s.max_per_session) rows.push(render.bar(done / s.max_per_session), el("div", { class: "small muted" }, `cap ${s.max_per_session} per session · ${s.remaining_session} left`));
    if (s.max_per_hour) rows.push(el("div", { class: "small muted" }, `last hour ${s.done_last_hour} of ${s.max_per_hour} · ${s.remaining_hour} left`));
    else rows.push(el("div", { class: "small muted" }, `${s.done_last_hour} in the last hour · no hourly cap`));
    if (s.paused_tiers.length) rows.push(el("div", { class: "small warn" }, `paused on tier ${s.paused_tiers.join(", ")}`));
    box.replaceChildren(...rows);
    return s;
  }

  async function heartbeat() {
    render.showLease(document.getElementById("lease"), current);
    const held = [current];
    if (upcomingValue && upcomingValue.assignment) held.push(upcomingValue);
    for (const h of held) {
      if (!(await render.keepLease(h)) && h === current && !busy) {
        carry = "Your time on that item ran out; here is the next one.";
        await next();
      }
    }
  }

  // -- keys -------------------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (render.typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "?") return render.toggleHelp();
    if (key === "Escape") return render.toggleHelp(false);
    if (!document.getElementById("help").hidden) return;
    if (key === "Enter") {
      event.preventDefault();
      return submit(false);
    }
    if (key === " ") {
      event.preventDefault(); // not a click on a focused button
      return acceptSuggestion();
    }
    if (key === "u" || key === "U") return submit(true);
    if (key === "/" && correction && current) {
      event.preventDefault();
      return correction.focus();
    }
    if (key === "s" || key === "S") return skip();
    if ((key === "h" || key === "H") && current && current.item) {
      heatOn = !heatOn;
      return current.item.heatToggle(heatOn);
    }
    const label = render.labelForKey(labels, key);
    if (label !== null) choose(label);
  });

  // Leaving gives the leases back (keepalive); on a reload those requests can land after this
  // page's first claim, so they are also noted per tab and released first when the page comes back.
  const LEFT = "loopwright.leftover-leases";
  window.addEventListener("pagehide", () => {
    const ids = current ? [current.assignment.lease.id] : [];
    if (upcomingValue && upcomingValue.assignment) ids.push(upcomingValue.assignment.lease.id);
    sessionStorage.setItem(LEFT, JSON.stringify(ids));
    render.releaseOnUnload(ids);
  });
  const leftover = JSON.parse(sessionStorage.getItem(LEFT) || "[]");
  sessionStorage.removeItem(LEFT);
  await Promise.all(leftover.map((id) => api("POST", `/v1/leases/${id}/release`).catch(() => {})));

  setInterval(heartbeat, 1000);
  await refreshSession();
  await next();
})().catch((e) => lw.showError(e.message));
