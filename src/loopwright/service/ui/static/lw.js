// loopwright UI: the shared client. The login trades the API token for an httpOnly session
// cookie (no script here can read either); only the chosen project lives in localStorage. Every
// page calls lw.boot(pageName) first, which checks the login, loads /v1/me and draws the nav.
"use strict";

const lw = (() => {
  const PROJECT = "loopwright.project";
  // Sent with every call: the server refuses cookie-authenticated changes without it (CSRF).
  const HEADERS = { "X-Requested-With": "loopwright" };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // Log in: the server sets the session cookie; the token is not kept anywhere in the page.
  const login = (token) => api("POST", "/ui/session", { token });
  const logout = async () => {
    await api("DELETE", "/ui/session").catch(() => {});
    location.href = "/ui/";
  };

  async function api(method, path, body) {
    const headers = { ...HEADERS };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      throw new ApiError(res.status, data.code || "http", data.message || res.statusText);
    }
    return data;
  }

  // Pages and the action a project membership needs to see them (see /v1/me "actions").
  const PAGES = [
    { page: "annotate", title: "Annotate", action: "review" },
    { page: "review", title: "Review", action: "review", roles: ["admin", "lead", "expert"] },
    { page: "dashboard", title: "Dashboard", action: "monitor" },
    { page: "admin", title: "Admin", action: "manage", anyAdmin: true }, // admins: even with no project
  ];

  const canSee = (membership, entry) =>
    membership &&
    membership.actions.includes(entry.action) &&
    (!entry.roles || entry.roles.includes(membership.role));

  function project(me) {
    const names = Object.keys(me.projects);
    const saved = localStorage.getItem(PROJECT);
    return names.includes(saved) ? saved : names[0] || null;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function drawNav(me, current, active) {
    const nav = document.getElementById("nav");
    if (!nav) return;
    nav.replaceChildren();
    nav.append(el("a", { href: "/ui/", class: "brand" }, "loopwright"));
    const membership = me.projects[current];
    for (const entry of PAGES) {
      if (!canSee(membership, entry) && !(entry.anyAdmin && me.admin)) continue;
      const attrs = { href: `/ui/${entry.page}`, "data-page": entry.page };
      if (entry.page === active) attrs.class = "active";
      nav.append(el("a", attrs, entry.title));
    }
    const select = el("select", { id: "project", "aria-label": "project" });
    for (const name of Object.keys(me.projects)) {
      const option = el("option", { value: name }, name);
      if (name === current) option.selected = true;
      select.append(option);
    }
    select.addEventListener("change", () => {
      localStorage.setItem(PROJECT, select.value);
      location.reload();
    });
    const role = membership ? membership.role : me.admin ? "admin" : "";
    nav.append(el("span", { class: "spacer" }));
    if (select.options.length) nav.append(select);
    nav.append(el("span", { class: "who" }, `${me.name} · ${role}`));
    nav.append(el("button", { class: "link", onclick: logout }, "log out"));
  }

  // Check login, load /v1/me, draw the nav; returns {me, project, membership} or redirects.
  async function boot(active) {
    let me;
    try {
      me = await api("GET", "/v1/me");
    } catch (e) {
      if (e.status === 401) {
        location.href = "/ui/"; // not logged in, or the session ended
        return new Promise(() => {});
      }
      throw e;
    }
    const current = project(me);
    drawNav(me, current, active);
    const membership = current ? me.projects[current] : null;
    const entry = PAGES.find((p) => p.page === active);
    if (entry && !canSee(membership, entry) && !(entry.anyAdmin && me.admin)) {
      const main = document.querySelector("main");
      const box = document.getElementById("error");
      for (const child of main ? main.children : []) child.hidden = !child.contains(box);
      const home = firstPage(membership);
      showError(
        `Your role in project '${current}' cannot open this page.` +
          (home ? ` Your work is on the ${home} page.` : ""),
      );
      return new Promise(() => {});
    }
    return { me, project: current, membership };
  }

  function showError(message) {
    const box = document.getElementById("error");
    if (!box) return alert(message);
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = document.getElementById("error");
    if (box) box.hidden = true;
  }

  // Where a role starts: experts on review, leads and admins on the dashboard, the rest on the first page they may see.
  function firstPage(membership) {
    const role = membership && membership.role;
    const order = role === "expert" ? ["review"] : role === "lead" || role === "admin" ? ["dashboard"] : [];
    const pages = [...order.map((p) => PAGES.find((e) => e.page === p)), ...PAGES];
    return (pages.find((entry) => canSee(membership, entry)) || { page: "" }).page;
  }

  // A task's "why" in words: no priorities or internal reason codes on a person's screen.
  const REASONS = {
    low_confidence: "the model is unsure",
    uncertified: "automatic acceptance is not certified yet",
    audit: "a random quality check",
    audit_recheck: "a quality check", // blind: not who answered before, nor what
    disputed: "disputed: earlier reviewers disagreed",
    escalated: "sent up from a lower tier",
    feedback: "a user reported the prediction",
    high_stakes: "a high-stakes label",
    near_duplicate: "looks like an earlier item",
    drift: "the data changed lately",
  };
  function plainWhy(why) {
    const parts = String(why || "").split(" · ").filter((p) => !p.startsWith("priority "));
    return parts
      .map((p) => {
        const code = p.split(":")[0].trim();
        if (/^(no_model|model_error|model_unavailable)$/.test(code)) return "no model suggestion";
        return REASONS[code] || p.replaceAll("_", " ");
      })
      .join(" · ");
  }

  return { api, ApiError, HEADERS, boot, el, login, logout, showError, clearError, firstPage, project, plainWhy };
})();
