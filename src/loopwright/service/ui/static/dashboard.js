// loopwright UI: the lead dashboard. One GET /v1/projects/{name}/dashboard every 30 s, drawn
// with Plotly (served from the installed plotly package) and plain tables, and the leaderboard.
"use strict";

const REFRESH_MS = 30000;
const COLORS = ["#2f6fde", "#e07b24", "#7b4fc9", "#1f8a4c", "#c53030", "#0f8b8d", "#b7791f", "#d6457a"];
const OK = "#1f8a4c";
const BAD = "#c53030";
const GREY = "#8a94a6";
const PLOTLY_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

const fmt = {
  pct: (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)} %`),
  num: (x, d = 3) => (x === null || x === undefined ? "—" : Number(x).toFixed(d)),
  p: (x) => (x === null || x === undefined ? "—" : x < 0.001 ? Number(x).toExponential(1) : Number(x).toFixed(3)),
  time: (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "medium" }) : "—"),
  seconds(s) {
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${s / 60} min`;
    if (s < 86400) return `${s / 3600} h`;
    return `${s / 86400} d`;
  },
};

// The common look of every chart: axis titles, small margins, a horizontal legend below.
function layout(xTitle, yTitle, extra = {}) {
  return {
    height: 300,
    margin: { l: 58, r: 20, t: 8, b: 40 },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2330" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fff",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
    hoverlabel: { align: "left" },
    ...extra,
    xaxis: { title: { text: xTitle }, automargin: true, gridcolor: "#eef0f3", ...extra.xaxis },
    yaxis: { title: { text: yTitle }, automargin: true, gridcolor: "#eef0f3", rangemode: "tozero", ...extra.yaxis },
  };
}

// Draw a chart, or replace it by a message saying what is missing.
function draw(id, traces, lay, emptyMessage) {
  const div = document.getElementById(id);
  const card = div.closest(".chart-card");
  card.querySelector(".empty")?.remove();
  if (emptyMessage) {
    Plotly.purge(div);
    div.hidden = true;
    const text = lw.el("p");
    // Our own fixed text with <code> markup; the only data in it is the escaped project name.
    text.innerHTML = emptyMessage.replaceAll("NAME", escapeHtml(PROJECT));
    card.append(lw.el("div", { class: "empty", "data-empty": id }, text));
    return;
  }
  div.hidden = false;
  Plotly.react(div, traces, lay, PLOTLY_CONFIG);
}

const dates = (isos) => isos.map((s) => new Date(s));
const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
let PROJECT = "";

function drawQueue(d) {
  const tiers = Object.keys(d.queue_depth);
  const traces = tiers.map((t, i) => ({
    type: "scatter",
    mode: "lines",
    name: `tier ${t} · ${d.tiers[t]}`,
    x: dates(d.buckets.ends),
    y: d.queue_depth[t],
    stackgroup: "queue",
    line: { width: 1.5, color: COLORS[i % COLORS.length] },
    hovertemplate: `tier ${t}: %{y} open<extra></extra>`,
  }));
  const empty = d.totals.tasks === 0
    ? "No review tasks yet — ingest items (<code>POST /v1/projects/NAME/items</code>) and the router queues the uncertain ones."
    : null;
  draw("chart-queue", traces, layout("time (end of bucket)", "open tasks", { hovermode: "x unified" }), empty);
}

function drawThroughput(d) {
  const width = d.buckets.seconds * 1000;
  const names = Object.keys(d.throughput_by_annotator);
  const traces = names.map((name, i) => ({
    type: "bar",
    name,
    x: dates(d.buckets.starts),
    y: d.throughput_by_annotator[name],
    offset: 0,
    width,
    marker: { color: COLORS[i % COLORS.length] },
    hovertemplate: `${name}: %{y}<extra></extra>`,
  }));
  const empty = d.totals.annotations === 0
    ? "No annotations yet — annotators label items on the <code>Annotate</code> page."
    : null;
  draw(
    "chart-throughput",
    traces,
    layout(`time (buckets of ${fmt.seconds(d.buckets.seconds)})`, "annotations per bucket", {
      barmode: "stack",
      bargap: 0.1,
      hovermode: "x unified",
    }),
    empty,
  );
}

function drawAutomation(d) {
  const x = dates(d.buckets.starts).map((t) => new Date(t.getTime() + (d.buckets.seconds * 1000) / 2));
  let routed = 0;
  let auto = 0;
  const cumulative = d.routed.map((n, k) => {  // per item: an acceptance from the backlog is no new item
    routed += n;
    auto += d.auto_accepted[k];
    return routed ? auto / routed : null;
  });
  const certs = d.certifications;
  const uncertified = certs.filter((c) => c.threshold === null);
  const certHover = (c) =>
    `v${c.model_version} · ε=${c.epsilon}, δ=${c.delta}<br>${c.n_errors} errors in ${c.n_evidence} audited items` +
    ` (upper bound ${fmt.num(c.upper_bound)})<br>${c.n_audited} audited items scored`;
  // Each certificate holds from its time until the next one (or the latest activity): a
  // horizontal segment, then a gap (null) so uncertified stretches stay empty.
  const end = d.end ? new Date(d.end) : null;
  const steps = [];
  certs.forEach((c, k) => {
    if (c.threshold === null) return;
    const until = k + 1 < certs.length ? new Date(certs[k + 1].at) : end;
    const text = certHover(c);
    steps.push({ x: new Date(c.at), y: c.threshold, text, size: 8 }, { x: until, y: c.threshold, text, size: 0 });
    steps.push({ x: until, y: null, text: "", size: 0 });
  });
  const traces = [
    {
      type: "bar",
      name: "auto-accepted per bucket",
      x,
      y: d.decisions.map((n, k) => (n ? d.auto_accepted[k] / n : null)),
      customdata: d.decisions.map((n, k) => [d.auto_accepted[k], n]),
      marker: { color: "rgba(47,111,222,0.35)" },
      hovertemplate: "%{customdata[0]} of %{customdata[1]} auto-accepted<extra></extra>",
    },
    {
      type: "scatter",
      mode: "lines",
      name: "automation rate, cumulative",
      x,
      y: cumulative,
      connectgaps: true,
      line: { color: COLORS[0], width: 2.5 },
      hovertemplate: "cumulative %{y:.1%}<extra></extra>",
    },
    {
      type: "scatter",
      mode: "lines+markers",
      name: "certified threshold",
      yaxis: "y2",
      x: steps.map((s) => s.x),
      y: steps.map((s) => s.y),
      line: { color: OK, width: 2.5 },
      marker: { size: steps.map((s) => s.size), color: OK },
      text: steps.map((s) => s.text),
      hovertemplate: "threshold %{y:.3f}<br>%{text}<extra></extra>",
    },
  ];
  if (uncertified.length) {
    traces.push({
      type: "scatter",
      mode: "markers",
      name: "nothing certified (all to review)",
      yaxis: "y2",
      x: uncertified.map((c) => new Date(c.at)),
      y: uncertified.map(() => 1.0),
      marker: { symbol: "x", size: 10, color: BAD },
      text: uncertified.map((c) => c.reason.replace(/; /g, "<br>")),
      hovertemplate: "%{text}<extra></extra>",
    });
  }
  const note = document.getElementById("automation-note");
  note.textContent = d.certify
    ? `Share of routed items auto-accepted (bars: the bucket's routing decisions, an acceptance from the certified ` +
      `backlog counted where it happened; line: items so far); right axis: the certified ` +
      `threshold, error ≤ ε=${d.certify.epsilon} with probability ≥ ${1 - d.certify.delta}.`
    : "Share of routed items auto-accepted. Routing uses a fixed threshold (routing.certify is off).";
  const empty = d.totals.decisions === 0
    ? "No routing decisions yet — ingest items (<code>POST /v1/projects/NAME/items</code>) to see how many are auto-accepted."
    : null;
  draw(
    "chart-automation",
    traces,
    layout("time", "automation rate", {
      yaxis: { range: [0, 1.05], tickformat: ".0%" },
      yaxis2: { title: { text: "certified threshold" }, range: [0, 1.05], overlaying: "y", side: "right", showgrid: false },
      margin: { l: 58, r: 58, t: 8, b: 40 },
      bargap: 0.15,
    }),
    empty,
  );
}

function drawDrift(d) {
  const hover = (p) =>
    `items ${p.window[0]}–${p.window[1]} · by ${p.actor}<br>${p.drifted_features} drifted features` +
    `<br>prediction drift: ${p.prediction_drift === null ? "not tested" : p.prediction_drift ? "yes" : "no"}` +
    ` · concept drift: ${p.concept_drift ? "yes" : "no"}<br>${p.sampled_tasks} items sampled into review` +
    (p.settled ? `<br>${p.settled} by the next batch` : "");
  const part = (detected) => d.drift.filter((p) => p.detected === detected && p.settled !== "retracted");
  const retracted = d.drift.filter((p) => p.settled === "retracted");
  const trace = (points, name, marker) => ({
    type: "scatter",
    mode: "markers",
    name,
    x: points.map((p) => new Date(p.at)),
    y: points.map((p) => p.domain_classifier_auc),
    text: points.map(hover),
    marker,
    hovertemplate: "AUC %{y:.3f}<br>%{text}<extra></extra>",
  });
  const traces = [
    trace(part(false), "no drift", { color: GREY, size: 10, symbol: "circle" }),
    trace(part(true), "drift detected", { color: BAD, size: 13, symbol: "x" }),
    ...(retracted.length ? [trace(retracted, "false alarm, retracted", { color: GREY, size: 13, symbol: "x-open" })] : []),
  ];
  const shapes = [
    {
      type: "line", xref: "paper", x0: 0, x1: 1, y0: d.auc_threshold, y1: d.auc_threshold,
      line: { color: BAD, width: 1, dash: "dot" },
    },
    ...part(true).map((p) => ({
      type: "line", yref: "paper", y0: 0, y1: 1, x0: new Date(p.at), x1: new Date(p.at),
      line: { color: "rgba(197,48,48,0.35)", width: 2 },
    })),
  ];
  const annotations = [{
    xref: "paper", x: 1, y: d.auc_threshold, yanchor: "bottom", xanchor: "right", showarrow: false,
    text: `AUC threshold ${d.auc_threshold}`, font: { size: 10, color: BAD },
  }];
  const empty = d.drift.length === 0
    ? "No drift checks yet — they run on ingest (<code>drift.check_on_ingest</code>) or on demand with " +
      "<code>POST /v1/projects/NAME/drift/check</code>, once two windows of <code>drift.window</code> items exist."
    : null;
  draw(
    "chart-drift",
    traces,
    layout("time of check", "domain-classifier AUC", {
      yaxis: { range: [Math.min(0.4, ...d.drift.map((p) => p.domain_classifier_auc ?? 1)) - 0.03, 1.03] },
      shapes,
      annotations,
    }),
    empty,
  );
}

function drawAgreementLabels(d) {
  const a = d.agreement;
  const labels = a ? Object.keys(a.per_label) : [];
  const metric = (key, name, color) => ({
    type: "bar",
    name,
    x: labels,
    y: labels.map((l) => a.per_label[l][key]),
    marker: { color },
    hovertemplate: `label %{x}: ${name} %{y:.3f}<extra></extra>`,
  });
  const traces = a ? [metric("fleiss_kappa", "Fleiss' κ", COLORS[0]), metric("krippendorff_alpha", "Krippendorff's α", COLORS[1])] : [];
  const note = document.getElementById("agreement-note");
  note.textContent = a
    ? `Each label against the rest. Overall: Fleiss' κ ${fmt.num(a.fleiss_kappa)}, Krippendorff's α ` +
      `${fmt.num(a.krippendorff_alpha)}, agreement ${fmt.pct(a.percent_agreement)} over ${a.items_with_2_or_more} items with ≥ 2 annotations.`
    : "Fleiss' κ and Krippendorff's α, each label against the rest.";
  const empty = !a || a.items_with_2_or_more === 0
    ? "No item has two annotations yet — agreement needs items labelled twice (a tier with " +
      "<code>required_annotations ≥ 2</code>, or escalations)."
    : null;
  draw(
    "chart-agreement-label",
    traces,
    layout("label", "agreement (1 = perfect, 0 = chance)", {
      barmode: "group",
      xaxis: { type: "category" },
      yaxis: { range: [Math.min(0, ...traces.flatMap((t) => t.y.filter((v) => v !== null))), 1.02] },
    }),
    empty,
  );
}

function drawAgreementPairs(d) {
  const pairs = d.agreement ? d.agreement.pairs.cohen_kappa : [];
  const names = [...new Set(pairs.flatMap((p) => [p.a, p.b]))].sort();
  const at = Object.fromEntries(names.map((n, i) => [n, i]));
  const z = names.map(() => names.map(() => null));
  const text = names.map(() => names.map(() => ""));
  for (const p of pairs) {
    for (const [r, c] of [[at[p.a], at[p.b]], [at[p.b], at[p.a]]]) {
      z[r][c] = p.kappa;
      text[r][c] = `${p.shared_items} shared items<br>Krippendorff's α ${fmt.num(p.krippendorff_alpha)}`;
    }
  }
  const traces = [{
    type: "heatmap",
    x: names,
    y: names,
    z,
    text,
    zmin: 0,
    zmax: 1,
    colorscale: "RdYlGn",
    colorbar: { title: { text: "κ" }, thickness: 12 },
    xgap: 2,
    ygap: 2,
    texttemplate: "%{z:.2f}",
    hovertemplate: "%{y} × %{x}: Cohen's κ %{z:.3f}<br>%{text}<extra></extra>",
  }];
  const empty = pairs.length === 0
    ? "No two annotators share two items yet — Cohen's κ needs pairs who labelled the same items."
    : null;
  draw(
    "chart-agreement-pairs",
    traces,
    layout("annotator", "annotator", {
      xaxis: { type: "category", showgrid: false },
      yaxis: { type: "category", showgrid: false, autorange: "reversed" },
      margin: { l: 70, r: 10, t: 8, b: 40 },
    }),
    empty,
  );
}

function drawSkill(d) {
  const rows = d.annotators;
  const names = rows.map((r) => (r.paused_tiers.length ? `${r.name}<br>(paused)` : r.name));
  const bar = (key, name, color) => ({
    type: "bar",
    name,
    x: names,
    y: rows.map((r) => r[key]),
    marker: { color },
    customdata: rows.map((r) => [r.gold_correct, r.gold_answers, r.annotations]),
    hovertemplate: `%{x}: ${name} %{y:.3f}<br>gold %{customdata[0]}/%{customdata[1]} · %{customdata[2]} annotations<extra></extra>`,
  });
  const traces = [bar("gold_accuracy", "gold accuracy", COLORS[3]), bar("skill", "Dawid–Skene skill", COLORS[2])];
  const empty = rows.length === 0
    ? "No annotator has worked yet — add gold items (<code>POST /v1/projects/NAME/gold</code>) to score them."
    : null;
  draw(
    "chart-skill",
    traces,
    layout("annotator", "accuracy", {
      barmode: "group",
      xaxis: { type: "category" },
      yaxis: { range: [0, 1.02], tickformat: ".0%" },
    }),
    empty,
  );
}

function gateHover(m) {
  const g = m.gate;
  if (!g) return "no gate run";
  const lines = [
    `<b>v${m.version}</b> ${m.status}${m.promoted ? " (was champion)" : ""}`,
    `test: ${g.test} · ${g.n_eval} eval items`,
    `accuracy ${fmt.num(g.challenger_accuracy)} vs ${g.champion_accuracy === null ? "baseline " + fmt.num(g.baseline_accuracy) : "champion v" + g.champion_version + " " + fmt.num(g.champion_accuracy)}`,
    `wins/losses ${g.wins}/${g.losses} · McNemar p ${fmt.p(g.p_value)}`,
  ];
  if (g.ece) lines.push(`ECE ${fmt.num(g.ece[0])} vs champion ${fmt.num(g.ece[1])}`);
  if (m.regressed_slices.length) lines.push(`regressed: ${m.regressed_slices.join(", ")}`);
  return lines.join("<br>");
}

function drawModels(d) {
  const models = d.models;
  const x = models.map((m) => `v${m.version}`);
  const acc = (m) => (m.gate ? m.gate.challenger_accuracy : m.metrics.eval_accuracy ?? null);
  const color = (m) => (m.status === "rejected" ? BAD : m.promoted ? OK : GREY);
  const traces = [
    {
      type: "scatter",
      mode: "lines+markers",
      name: "version's accuracy (green promoted, red rejected)",
      x,
      y: models.map(acc),
      text: models.map(gateHover),
      line: { color: "#b8c0cc", width: 1.5 },
      marker: {
        size: 13,
        color: models.map(color),
        symbol: models.map((m) => (m.status === "rejected" ? "x" : "circle")),
        line: { width: models.map((m) => (m.status === "champion" ? 3 : 0)), color: "#1d2330" },
      },
      hovertemplate: "%{text}<extra></extra>",
    },
    {
      type: "scatter",
      mode: "markers",
      name: "champion then, same items",
      x,
      y: models.map((m) => (m.gate ? m.gate.champion_accuracy : null)),
      marker: { size: 9, symbol: "circle-open", color: "#1d2330" },
      hovertemplate: "champion before: %{y:.3f}<extra></extra>",
    },
  ];
  const empty = models.length === 0
    ? "No model versions yet — retraining starts after <code>retrain.every_n_labels</code> resolved labels " +
      "(or <code>POST /v1/projects/NAME/retrain</code>)."
    : null;
  draw(
    "chart-models",
    traces,
    layout("model version", "accuracy on its eval split", {
      xaxis: { type: "category" },
      yaxis: { range: [0, 1.02], tickformat: ".0%" },
    }),
    empty,
  );
}

function table(id, headers, rows, emptyText) {
  const tbl = document.getElementById(id);
  const head = lw.el("tr", {}, ...headers.map(([text, cls]) => lw.el("th", cls ? { class: cls } : {}, text)));
  const body = rows.map((cells) =>
    lw.el("tr", {}, ...cells.map(([value, cls]) => lw.el("td", cls ? { class: cls } : {}, value))),
  );
  if (!rows.length) body.push(lw.el("tr", {}, lw.el("td", { colspan: headers.length, class: "muted" }, emptyText)));
  tbl.replaceChildren(lw.el("thead", {}, head), lw.el("tbody", {}, ...body));
}

const badge = (text, cls) => lw.el("span", { class: `badge ${cls}` }, text);

// How often their label was the model's suggestion, and everyone else's share in brackets.
const deference = (x) => (x ? `${fmt.pct(x.agreed / x.answers)} of ${x.answers} (${fmt.pct(x.peers)})` : "—");

function status(r) {
  if (r.paused_tiers.length) return badge(`paused from tier ${r.paused_tiers.join(", ")}`, "paused");
  if (r.deference && r.deference.flagged) {
    const why = `agrees with the model's suggestion far more often than the others (p = ${fmt.p(r.deference.p_value)}): check their work`;
    return lw.el("span", { class: "badge paused", title: why }, "only accepts suggestions?");
  }
  return badge("active", "ok");
}

// Gold catches someone who only accepts suggestions only on gold items the model gets wrong.
function goldNote(t) {
  const agree = "“Agrees with the model”: how often their label was the suggestion shown to them (everyone else's share in brackets).";
  if (t.gold_scored === null) return agree;
  const audits = t.gold_from_audits
    ? "the loop makes gold by itself (gold.from_audits) of the audits the champion gets wrong"
    : `loopwright gold --from-audits (POST /v1/projects/${PROJECT}/gold/from-audits) makes gold of the audits the champion gets wrong`;
  if (!t.gold_scored) return `No gold items yet: add items with known answers (loopwright gold FILE), or ${audits}. ${agree}`;
  const missed = `The champion gets ${t.gold_missed} of the newest ${t.gold_scored} gold items wrong`;
  return t.gold_missed
    ? `${missed}: on those, gold catches someone who only accepts suggestions. ${agree}`
    : `${missed}, so gold cannot catch someone who only accepts suggestions: add gold the model misses (${audits}). ${agree}`;
}

function drawSkillTable(d) {
  document.getElementById("gold-note").textContent = goldNote(d.totals);
  table(
    "skill-table",
    [["annotator"], ["tiers"], ["annotations", "num"], ["gold answers", "num"], ["gold accuracy", "num"],
      ["Dawid–Skene skill", "num"], ["agrees with the model (others)", "num"], ["status"], ["last active"]],
    d.annotators.map((r) => [
      [r.name],
      [r.tiers.join(", ") || "—"],
      [r.annotations, "num"],
      [`${r.gold_correct} / ${r.gold_answers}`, "num"],
      [fmt.pct(r.gold_accuracy), "num"],
      [fmt.num(r.skill), "num"],
      [deference(r.deference), "num"],
      [status(r)],
      [fmt.time(r.last_active)],
    ]),
    "No annotator has worked yet.",
  );
}

function drawModelsTable(d) {
  table(
    "models-table",
    [["version"], ["status"], ["created"], ["dataset"], ["train / eval", "num"], ["accuracy", "num"],
      ["vs champion", "num"], ["wins / losses", "num"], ["McNemar p", "num"], ["ECE new / old", "num"], ["gate"]],
    d.models.map((m) => {
      const g = m.gate || {};
      return [
        [`v${m.version}`],
        [badge(m.status, m.status)],
        [fmt.time(m.created_at)],
        [m.dataset_version ? m.dataset_version.slice(0, 10) : "—"],
        [`${m.metrics.train_size ?? "—"} / ${m.metrics.eval_size ?? "—"}`, "num"],
        [fmt.num(g.challenger_accuracy ?? m.metrics.eval_accuracy), "num"],
        [g.champion_accuracy === null || g.champion_accuracy === undefined
          ? `baseline ${fmt.num(g.baseline_accuracy)}`
          : `v${g.champion_version} ${fmt.num(g.champion_accuracy)}`, "num"],
        [g.wins === undefined ? "—" : `${g.wins} / ${g.losses}`, "num"],
        [fmt.p(g.p_value), "num"],
        [g.ece ? `${fmt.num(g.ece[0])} / ${fmt.num(g.ece[1])}` : "—", "num"],
        [g.reason || "no gate run", "reason"],
      ];
    }),
    "No model versions yet.",
  );
}

function kpi(label, value, sub) {
  return lw.el("div", { class: "kpi" }, lw.el("div", { class: "label" }, label),
    lw.el("div", { class: "value" }, value), lw.el("div", { class: "sub" }, sub || "\u00a0"));
}

function drawKpis(d) {
  const t = d.totals;
  const perTier = Object.entries(t.open_tasks_by_tier).map(([k, n]) => `t${k}: ${n}`).join(" · ");
  const paused = d.annotators.filter((r) => r.paused_tiers.length).length;
  const last = d.certifications[d.certifications.length - 1];
  document.getElementById("kpis").replaceChildren(
    kpi("open tasks", t.open_tasks, (perTier || "queues empty") +
      (t.audits_waiting ? ` · ${t.audits_waiting} audits wait for another answer` : "")),
    kpi("annotations", t.annotations, `${t.resolutions} items resolved · ${t.gold_answers} gold answers`),
    kpi("automation rate", fmt.pct(t.automation_rate), `${t.auto_accepted} of ${t.routed_items} items auto-accepted`),
    kpi("certified threshold", t.threshold === null ? "none" : fmt.num(t.threshold),
      !last ? "not certified yet"
        : `${t.threshold === null ? "all to review · " : ""}ε=${last.epsilon}, δ=${last.delta}`),
    kpi("champion", t.champion === null ? "none" : `v${t.champion}`, `${d.models.length} versions`),
    kpi(
      "drift",
      `${t.drift_detected} detected`,
      `${t.drift_checks} checks` + (t.drift_retracted ? ` · ${t.drift_retracted} retracted` : ""),
    ),
    kpi("annotators", d.annotators.length, paused ? `${paused} paused` : "none paused"),
  );
}

function render(d) {
  document.getElementById("span").textContent = d.start
    ? `${fmt.time(d.start)} – ${fmt.time(d.end)} · buckets of ${fmt.seconds(d.buckets.seconds)} · ` +
      `updated ${new Date().toLocaleTimeString()} (every ${REFRESH_MS / 1000} s)`
    : "No activity yet.";
  drawKpis(d);
  drawQueue(d);
  drawThroughput(d);
  drawAutomation(d);
  drawDrift(d);
  drawAgreementLabels(d);
  drawAgreementPairs(d);
  drawSkill(d);
  drawModels(d);
  drawSkillTable(d);
  drawModelsTable(d);
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}

(async () => {
  const { project, me } = await lw.boot("dashboard");
  PROJECT = project;
  document.getElementById("project-name").textContent = `· ${project}`;
  const board = async () => {
    const b = await lwBoard.load(project, document.getElementById("leaderboard"), me.name);
    document.getElementById("leaderboard-shown").textContent = b.visible_to_annotators
      ? "· annotators see it"
      : "· hidden from annotators (Admin → settings)";
  };
  const load = async () => {
    try {
      render(await lw.api("GET", `/v1/projects/${encodeURIComponent(project)}/dashboard`));
      await board().catch((e) => (document.getElementById("leaderboard").textContent = `Leaderboard unavailable: ${e.message}`));
      lw.clearError();
    } catch (e) {
      lw.showError(`Could not load the dashboard: ${e.message}`);
    }
  };
  window.dashboard = { refresh: load }; // for a manual refresh (and the browser test)
  await load();
  setInterval(load, REFRESH_MS);
})();
