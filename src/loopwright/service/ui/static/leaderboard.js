// loopwright UI: the gamified leaderboard (GET /v1/projects/{name}/leaderboard), drawn in full on
// the dashboard and compactly (the top five and your own row) beside the annotator's work.
"use strict";

const lwBoard = (() => {
  const { el } = lw;
  const num = (x, d = 2) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));
  const HEAD = ["#", "annotator", "answers", "gold right", "skill", "quality", "score", "day streak", "agreement streak"];
  const NOTE =
    "Score = answers × κ², κ = how far quality beats chance (0 for guessing). Quality: gold accuracy " +
    "shrunk toward Dawid–Skene skill. Streaks: days in a row; checked answers right in a row (best in brackets).";

  const COMPACT = [0, 1, 2, 6, 7]; // the columns shown beside the work (a narrow card)
  const COMPACT_HEAD = ["#", "annotator", "answers", "score", "days"];
  const COMPACT_NOTE = "Score = answers × κ², κ = how far quality beats chance (0 for guessing). Days: in a row (best).";

  function row(r, me, compact) {
    const s = r.streaks;
    const cells = [
      r.rank,
      r.annotator,
      r.answers,
      r.gold_answers ? `${r.gold_correct}/${r.gold_answers}` : "—",
      num(r.skill),
      num(r.quality),
      num(r.score, 1),
      `${s.days} (${s.best_days})`,
      `${s.agreeing} (${s.best_agreeing})`,
    ];
    const attrs = r.annotator === me ? { class: "me", "data-annotator": r.annotator } : { "data-annotator": r.annotator };
    const keep = compact ? COMPACT.map((k) => cells[k]) : cells;
    return el("tr", attrs, ...keep.map((c) => el("td", {}, c)));
  }

  // Every tier with answers: a full table each (compact: the top five plus ``me``).
  function draw(node, board, me, compact = false) {
    const parts = [];
    for (const t of board.tiers) {
      if (!t.rows.length) continue;
      const shown = compact ? t.rows.filter((r) => r.rank <= 5 || r.annotator === me) : t.rows;
      const table = el("table", { class: "data board", "data-tier": String(t.tier) });
      const head = compact ? COMPACT_HEAD : HEAD;
      table.append(el("tr", {}, ...head.map((h) => el("th", {}, h))), ...shown.map((r) => row(r, me, compact)));
      parts.push(el("h3", {}, `Tier ${t.tier} · ${t.name}`), table);
    }
    if (!parts.length) parts.push(el("p", { class: "muted" }, "No answers yet."));
    parts.push(el("p", { class: "note muted small" }, compact ? COMPACT_NOTE : NOTE));
    node.replaceChildren(...parts);
  }

  async function load(project, node, me, compact = false) {
    const board = await lw.api("GET", `/v1/projects/${encodeURIComponent(project)}/leaderboard`);
    draw(node, board, me, compact);
    return board;
  }

  return { draw, load };
})();
