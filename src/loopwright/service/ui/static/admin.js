// loopwright UI: the admin and lead page. Admins create projects (a form or pasted YAML, with
// the server's field errors); admins and leads upload items, manage people and their tokens
// (a token is shown once), see and cancel jobs, promote, roll back and compare models, and edit
// the guidelines, tiers and leaderboard flag (an edit names the version it started from).
"use strict";

(async () => {
  const { el, api, showError, clearError } = lw;
  const ctx = await lw.boot("admin");
  const { me, project } = ctx;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const base = project ? `/v1/projects/${enc(project)}` : null;
  const lead = project && (me.admin || (ctx.membership && ctx.membership.role === "lead"));
  $("admin-project").textContent = project ? `· ${project}` : "";

  const sections = ["sec-create", "sec-upload", "sec-people", "sec-jobs", "sec-models", "sec-settings"];
  if (me.admin) $("sec-create").hidden = false;
  if (lead) for (const id of sections.slice(1)) $(id).hidden = false;
  document.addEventListener("keydown", (e) => {
    const n = Number(e.key);
    if (!e.altKey || !(n >= 1 && n <= sections.length)) return;
    const section = $(sections[n - 1]);
    if (section.hidden) return;
    e.preventDefault();
    const first = section.querySelector("input, select, textarea, button");
    if (first) first.focus();
  });

  const fail = (e) => showError(e.message || String(e));
  const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
  const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "");

  function table(node, head, rows) {
    node.replaceChildren(el("tr", {}, ...head.map((h) => el("th", {}, h))));
    for (const cells of rows) node.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
    if (!rows.length) node.append(el("tr", {}, el("td", { colspan: String(head.length), class: "muted" }, "none yet")));
  }

  // -- new project --------------------------------------------------------------------------
  function showFieldErrors(e) {
    const box = $("create-errors");
    box.replaceChildren();
    const errors = (e && e.errors) || [];
    for (const f of errors) box.append(el("li", {}, el("code", {}, f.field), ` ${f.message}`));
    box.hidden = !errors.length;
    if (!errors.length && e) fail(e);
  }

  function tab(yaml) {
    $("create-form").hidden = yaml;
    $("create-yaml").hidden = !yaml;
    $("tab-form").setAttribute("aria-selected", String(!yaml));
    $("tab-yaml").setAttribute("aria-selected", String(yaml));
    (yaml ? $("p-yaml") : $("p-name")).focus();
  }
  $("tab-form").addEventListener("click", () => tab(false));
  $("tab-yaml").addEventListener("click", () => tab(true));

  async function create(body) {
    clearError();
    showFieldErrors(null);
    try {
      const made = await rawApi("POST", "/v1/admin/projects", body);
      localStorage.setItem("loopwright.project", made.name);
      location.reload();
    } catch (e) {
      showFieldErrors(e);
    }
  }

  $("create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const overlap = Number($("p-overlap").value || 1);
    const config = {
      name: $("p-name").value.trim(),
      labels: list($("p-labels").value),
      modality: $("p-modality").value,
      tiers: [
        { tier: 1, name: "bulk", required_annotations: overlap },
        { tier: 2, name: "uncertain" },
        { tier: 3, name: "expert" },
      ],
      retrain: { every_n_labels: Number($("p-every").value), min_labels: Number($("p-min").value) },
      guidelines: $("p-guidelines").value,
    };
    const features = list($("p-features").value);
    if (features.length) config.features = features;
    create({ config });
  });
  $("create-yaml").addEventListener("submit", (event) => {
    event.preventDefault();
    create({ yaml: $("p-yaml").value });
  });

  // lw.api drops the field errors of a 422: this keeps them for the form.
  async function rawApi(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { ...lw.HEADERS, "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = new lw.ApiError(res.status, data.code || "http", data.message || res.statusText);
      e.errors = data.errors || [];
      throw e;
    }
    return data;
  }

  if (!lead) return;

  // -- upload -------------------------------------------------------------------------------
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearError();
    const file = $("u-file").files[0];
    if (!file) return;
    const format = /\.(jsonl|ndjson)$/i.test(file.name) ? "jsonl" : "csv";
    const bar = $("u-progress");
    const status = $("u-status");
    bar.hidden = false;
    bar.value = 0;
    status.textContent = `uploading ${file.name}…`;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${base}/uploads?format=${format}&id_col=${enc($("u-id").value.trim())}`);
    for (const [k, v] of Object.entries(lw.HEADERS)) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader("Content-Type", format === "csv" ? "text/csv" : "application/x-ndjson");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = e.loaded / e.total;
      if (bar.value >= 1) status.textContent = "uploaded; importing…";
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try {
        data = JSON.parse(xhr.responseText);
      } catch (_) {}
      if (xhr.status !== 200) {
        status.textContent = "";
        return fail(new Error(data.message || `upload failed (${xhr.status})`));
      }
      bar.value = 1;
      status.textContent =
        `${data.read} rows read: ${data.ingested} ingested, ${data.skipped} already in, ` +
        `${data.rejected} rejected, ${data.to_review} to review`;
      $("u-rejects").hidden = !data.rejected_rows.length;
      table(
        $("u-rejects-table"),
        ["where", "id", "reason"],
        data.rejected_rows.map((r) => [r.where, r.external_id || "", r.reason]),
      );
    });
    xhr.addEventListener("error", () => fail(new Error("the upload did not reach the server")));
    xhr.send(file);
  });

  // -- people -------------------------------------------------------------------------------
  function showToken(user, token) {
    $("token-user").textContent = user;
    $("token-value").textContent = token;
    $("token-box").hidden = false;
    $("token-value").focus();
  }
  $("token-hide").addEventListener("click", () => {
    $("token-value").textContent = "";
    $("token-box").hidden = true;
  });

  async function issue(user) {
    try {
      const t = await api("POST", `${base}/members/${enc(user)}/tokens`);
      showToken(user, t.token);
      await people();
    } catch (e) {
      fail(e);
    }
  }

  async function revoke(user, id) {
    try {
      await api("POST", `${base}/members/${enc(user)}/tokens/${id}/revoke`);
      await people();
    } catch (e) {
      fail(e);
    }
  }

  async function people() {
    const { members } = await api("GET", `${base}/members`);
    table(
      $("people-table"),
      ["person", "role", "tiers", "live tokens", ""],
      members.map((m) => [
        m.user,
        m.role,
        m.tiers ? m.tiers.join(", ") : "all",
        el(
          "span",
          {},
          ...m.tokens.map((id) =>
            el("button", { type: "button", class: "small", "data-revoke": `${m.user}:${id}`, onclick: () => revoke(m.user, id) }, `revoke #${id}`),
          ),
        ),
        el("button", { type: "button", "data-issue": m.user, onclick: () => issue(m.user) }, "issue token"),
      ]),
    );
  }

  $("member-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const tiers = list($("m-tiers").value).map(Number);
    const user = $("m-user").value.trim();
    try {
      await api("POST", `${base}/members`, { user, role: $("m-role").value, tiers: tiers.length ? tiers : null });
      $("m-user").value = "";
      $("m-tiers").value = "";
      await issue(user);
    } catch (e) {
      fail(e);
    }
  });

  // -- jobs ---------------------------------------------------------------------------------
  async function jobs() {
    const data = await api("GET", `${base}/jobs`);
    table(
      $("jobs-table"),
      ["#", "kind", "status", "progress", "started by", "created", ""],
      data.jobs.map((j) => [
        String(j.id),
        j.kind,
        j.status + (j.error ? `: ${j.error}` : ""),
        `${Math.round(j.progress * 100)} %`,
        j.trigger ? `${j.actor} (${j.trigger})` : j.actor,
        when(j.created_at),
        ["queued", "running"].includes(j.status) && !j.cancel_requested
          ? el("button", { type: "button", onclick: () => cancel(j.id) }, "cancel")
          : "",
      ]),
    );
  }
  async function cancel(id) {
    try {
      await api("POST", `/v1/jobs/${id}/cancel`);
      await jobs();
    } catch (e) {
      fail(e);
    }
  }
  $("retrain-now").addEventListener("click", async () => {
    try {
      await api("POST", `${base}/retrain`);
      await jobs();
    } catch (e) {
      fail(e);
    }
  });

  // -- models -------------------------------------------------------------------------------
  let models = [];
  const gateText = (g) => (g ? g.reason || (g.passed ? "passed" : "failed") : "no gate (first or forced)");
  const accuracy = (m) => {
    const a = m.metrics ? m.metrics.eval_accuracy ?? m.metrics.accuracy : null;
    return a == null ? "–" : Number(a).toFixed(3);
  };

  async function modelList() {
    ({ models } = await api("GET", `${base}/models`));
    table(
      $("models-table"),
      ["version", "status", "aliases", "accuracy", "gate evidence", ""],
      models.map((m) => [
        `v${m.version}`,
        m.status,
        (m.aliases || []).join(", "),
        accuracy(m),
        gateText(m.gate),
        (m.aliases || []).includes("champion") || m.status === "rejected"
          ? ""
          : el("button", { type: "button", onclick: () => promote(m.version) }, "promote"),
      ]),
    );
    for (const id of ["cmp-a", "cmp-b"]) {
      $(id).replaceChildren(...models.map((m) => el("option", { value: String(m.version) }, `v${m.version}`)));
    }
    if (models.length > 1) $("cmp-b").value = String(models[models.length - 1].version);
  }
  async function promote(version) {
    try {
      await api("POST", `${base}/models/${version}/promote`);
      await modelList();
    } catch (e) {
      fail(e);
    }
  }
  $("rollback").addEventListener("click", async () => {
    try {
      await api("POST", `${base}/models/rollback`);
      await modelList();
    } catch (e) {
      fail(e);
    }
  });
  $("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const pick = (id) => models.find((m) => String(m.version) === $(id).value);
    const a = pick("cmp-a");
    const b = pick("cmp-b");
    if (!a || !b) return;
    const flat = (m) => {
      const out = { status: m.status, dataset: (m.dataset_version_id || "").slice(0, 12), gate: gateText(m.gate) };
      for (const [k, v] of Object.entries(m.metrics || {})) if (typeof v !== "object") out[k] = v;
      for (const [k, v] of Object.entries(m.gate || {})) if (typeof v !== "object" && k !== "reason") out[`gate ${k}`] = v;
      return out;
    };
    const fa = flat(a);
    const fb = flat(b);
    const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])];
    const show = (v) => (v == null ? "–" : typeof v === "number" ? String(Math.round(v * 10000) / 10000) : String(v));
    const node = $("compare-table");
    node.hidden = false;
    table(node, ["", `v${a.version}`, `v${b.version}`], keys.map((k) => [k, show(fa[k]), show(fb[k])]));
  });

  // -- guidelines, tiers, leaderboard -------------------------------------------------------
  let settingsVersion = null;
  let tierCount = 0;
  function tierRow(t) {
    const cell = (cls, attrs) => el("td", {}, el("input", { class: cls, ...attrs }));
    const n = String(t.tier);
    return el(
      "tr",
      { "data-tier": n },
      el("td", {}, n),
      cell("t-name", { value: t.name, required: "", "aria-label": `tier ${n} name` }),
      cell("t-required", { type: "number", min: "1", max: "50", value: String(t.required_annotations), "aria-label": `tier ${n} people per item` }),
      cell("t-lease", { type: "number", min: "5", value: String(t.lease_seconds), "aria-label": `tier ${n} lease seconds` }),
    );
  }
  function drawSettings(s) {
    settingsVersion = s.version;
    $("s-guidelines").value = s.guidelines;
    $("s-leaderboard").checked = Boolean(s.leaderboard.visible_to_annotators);
    const node = $("s-tiers");
    node.replaceChildren(el("tr", {}, ...["Tier", "Name", "People per item", "Lease (s)"].map((h) => el("th", {}, h))));
    for (const t of s.tiers) node.append(tierRow(t));
    tierCount = s.tiers.length;
  }
  async function settingsLoad() {
    drawSettings(await api("GET", `${base}/settings`));
  }
  $("s-add-tier").addEventListener("click", () => {
    tierCount += 1;
    $("s-tiers").append(tierRow({ tier: tierCount, name: `tier ${tierCount}`, required_annotations: 1, lease_seconds: 300 }));
    $("s-tiers").querySelector(`tr[data-tier="${tierCount}"] .t-name`).focus();
  });
  $("settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const box = $("settings-errors");
    box.hidden = true;
    const tiers = [...$("s-tiers").querySelectorAll("tr[data-tier]")].map((row) => ({
      tier: Number(row.dataset.tier),
      name: row.querySelector(".t-name").value.trim(),
      required_annotations: Number(row.querySelector(".t-required").value),
      lease_seconds: Number(row.querySelector(".t-lease").value),
    }));
    const body = {
      version: settingsVersion,
      guidelines: $("s-guidelines").value,
      tiers,
      leaderboard: { visible_to_annotators: $("s-leaderboard").checked },
    };
    try {
      drawSettings(await rawApi("PUT", `${base}/settings`, body));
      $("s-status").textContent = "Saved.";
    } catch (e) {
      $("s-status").textContent = "";
      box.replaceChildren(el("li", {}, e.message), ...(e.errors || []).map((f) => el("li", {}, el("code", {}, f.field), ` ${f.message}`)));
      box.hidden = false;
    }
  });

  try {
    await Promise.all([people(), jobs(), modelList(), settingsLoad()]);
  } catch (e) {
    fail(e);
  }
  setInterval(() => jobs().catch(() => {}), 5000);
})();
