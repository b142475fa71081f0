// gridshare dashboard: reads the operator API, follows /api/live (server-sent
// events read with fetch, so a bearer token can be sent), draws each group's
// capacity vs planned vs measured per line with uPlot, and sets group limits.
// Times are the site's (its time zone from /api/status), written the way the
// reader's locale writes them (24 h or 12 h).
"use strict";

(function () {
  const LINE_COLOURS = { L1: "#2454d6", L2: "#1a7f4b", L3: "#b54708" };
  const CAPACITY_COLOUR = "#b42318";
  const HISTORY_HOURS = 6;
  const TIMELINE_DEBOUNCE_MS = 800;
  const HOUR_S = 3600;
  // what an operator looks at first: the last hours and the next few
  const NEAR_VIEW = { before: 3 * HOUR_S, after: 6 * HOUR_S };
  const IDLE_RESERVE_TIP =
    "Reserved for idle connectors: each counts at its fallback limit (its maximum until " +
    "its station confirmed one), because a car that plugs in draws that much before a " +
    "plan reaches the station. The planner keeps this share free, so the sum of limits " +
    "in force may read above what is planned or measured.";

  const state = {
    tz: "UTC",
    view: "near", // "near" (−3 h … +6 h) or "all" (the whole horizon)
    sessions: new Map(), // connector → the running session (/api/sessions)
    status: null,
    charts: new Map(), // group id → {plot, lines, el}
    groups: [],
    lastLimits: new Map(), // connector → limit shown
    timelineTimer: null,
    timelineBusy: false,
    timelineAgain: false,
    timelineVersion: 0,
    snapshots: 0,
  };

  const $ = (sel) => document.querySelector(sel);

  // A deployment of several sites: the site from ?site=, its routes under /api/sites/{site}/.
  const SITE = (() => {
    try {
      const m = /[?&]site=([^&]*)/.exec(location.search);
      return m ? decodeURIComponent(m[1]) : null;
    } catch (e) {
      return null; // no page address (the script run on its own)
    }
  })();
  function scoped(path) {
    if (!SITE || !path.startsWith("/api/") || path.startsWith("/api/sites")) return path;
    return "/api/sites/" + encodeURIComponent(SITE) + path.slice(4);
  }

  function token() {
    return sessionStorage.getItem("gridshare-token") || "";
  }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const t = token();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = headers(opts.headers);
    let res;
    try {
      res = await fetch(scoped(path), opts);
    } catch (e) {
      // no answer at all: say so, not the browser's "Failed to fetch"
      const write = opts.method && opts.method !== "GET";
      const err = new Error("The service does not answer (stopped, or the network is down)" +
        (write ? ": reload once it is back to see whether the change was made." : "."));
      err.status = 0;
      throw err;
    }
    let body = null;
    const text = await res.text();
    if (text) {
      try { body = JSON.parse(text); } catch (e) { body = { detail: text }; }
    }
    if (!res.ok) {
      const err = new Error(describeError(res.status, body));
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function describeError(status, body) {
    const detail = body && body.detail;
    if (Array.isArray(detail)) {
      return status + ": " + detail.map((d) => {
        const field = (d.loc || []).filter((p) => p !== "body").join(".");
        return (field ? field + ": " : "") + d.msg;
      }).join("; ");
    }
    return status + ": " + (detail || "request failed");
  }

  const fmt = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

  // --- times in the site's zone ---------------------------------------------------------

  const formats = new Map();
  function formatter(kind) {
    const key = state.tz + "|" + kind;
    if (!formats.has(key)) {
      const opts = { timeZone: state.tz };
      if (kind === "time") Object.assign(opts, { hour: "2-digit", minute: "2-digit" });
      if (kind === "day") Object.assign(opts, { weekday: "short", hour: "2-digit", minute: "2-digit" });
      if (kind === "full") {
        Object.assign(opts, { weekday: "short", day: "numeric", month: "short", hour: "2-digit",
          minute: "2-digit", second: "2-digit", timeZoneName: "short" });
      }
      if (kind === "weekday") Object.assign(opts, { weekday: "short" });
      formats.set(key, new Intl.DateTimeFormat(undefined, opts));
    }
    return formats.get(key);
  }
  const timeText = (iso) => (iso ? formatter("time").format(new Date(iso)) : "–");
  const dayTimeText = (iso) => (iso ? formatter("day").format(new Date(iso)) : "–");

  /** Milliseconds the site's zone is ahead of UTC at ``ms``. */
  function zoneOffsetMs(ms) {
    const parts = {};
    const f = new Intl.DateTimeFormat("en-US", { timeZone: state.tz, hourCycle: "h23",
      year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
      second: "numeric" });
    for (const p of f.formatToParts(new Date(ms))) parts[p.type] = Number(p.value);
    const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour % 24, parts.minute,
      parts.second);
    return wall - Math.floor(ms / 1000) * 1000;
  }

  /** A datetime-local value read as the site's wall time, as an ISO instant. */
  function siteTimeToIso(value) {
    if (!value) return null;
    const [d, t] = value.split("T");
    const [y, mo, da] = d.split("-").map(Number);
    const [h, mi] = t.split(":").map(Number);
    const wall = Date.UTC(y, mo - 1, da, h, mi);
    let ms = wall - zoneOffsetMs(wall);
    ms = wall - zoneOffsetMs(ms); // once more across a change of offset
    return new Date(ms).toISOString();
  }

  function setChip(el, text, cls) {
    el.textContent = text;
    el.className = "chip " + (cls || "");
  }

  // --- snapshot → page ------------------------------------------------------------------

  function renderStatus(status) {
    state.status = status;
    if (status.timezone && status.timezone !== state.tz) {
      state.tz = status.timezone;
      for (const entry of state.charts.values()) entry.plot.destroy();
      state.charts.clear(); // their axes are drawn in the old zone
      document.querySelectorAll(".zone-name").forEach((el) => { el.textContent = state.tz; });
    }
    $("#site-name").textContent = status.site;
    $("#clock").textContent = formatter("full").format(new Date(status.now));
    $("#clock").title = "Site time (" + state.tz + ")";
    const plan = status.plan;
    if (plan) {
      const cls = plan.status === "optimal" ? "ok" : plan.status === "empty" ? "" : "warn";
      setChip($("#plan-state"), "plan #" + plan.plan_id + " " + plan.status +
        " · unmet " + fmt(plan.unmet_kwh, 1) + " kWh", cls);
    }
    const dso = status.dso;
    if (!dso.configured) {
      setChip($("#dso-state"), "DSO: not configured", "");
    } else {
      const hb = dso.last_heartbeat ? " · heartbeat " + timeText(dso.last_heartbeat) : "";
      const text = "DSO: " + (dso.online ? "online" : "offline") + hb +
        (dso.fallback_active ? " · FALLBACK" : "");
      setChip($("#dso-state"), text, dso.fallback_active || !dso.online ? "bad" : "ok");
    }
  }

  function groupFacts(g) {
    const parts = [];
    parts.push("in force <b>" + (g.capacity_a === null ? "no A limit" : fmt(g.capacity_a, 0) + " A") +
      "</b>" + (g.capacity_kw === null ? "" : " / <b>" + fmt(g.capacity_kw, 0) + " kW</b>"));
    parts.push("static " + (g.static_limit_a === null ? "–" : fmt(g.static_limit_a, 0) + " A") +
      (g.static_limit_kw === null ? "" : " / " + fmt(g.static_limit_kw, 0) + " kW"));
    if (g.override) {
      const o = g.override;
      const lim = [o.limit_a === null ? null : fmt(o.limit_a, 0) + " A",
        o.limit_kw === null ? null : fmt(o.limit_kw, 0) + " kW"].filter(Boolean).join(" / ");
      const win = (o.start ? " from " + dayTimeText(o.start) : "") + (o.end ? " until " + dayTimeText(o.end) : "");
      parts.push('<span class="override">override ' + lim + win + " by " + escapeHtml(o.set_by) +
        (o.active_now ? "" : " (not in force now)") + "</span>");
    }
    if (g.dso_forecast) {
      const f = g.dso_forecast;
      parts.push("DSO now " + (f.limit_a === null ? "no limit" : fmt(f.limit_a, 0) + " A"));
    }
    const load = g.lines.map((l) => l + " " + fmt(g.measured_a[l], 0) + "/" + fmt(g.planned_a[l], 0))
      .join(" · ");
    return parts.join(" · ") + "<br>measured/planned A now: " + load;
  }

  /** Per line: the limits in force of running sessions and what idle connectors
   * hold in reserve, in a group (from the status' sums and its sessions). */
  function groupReserve(g, stations) {
    const status = state.status;
    const sums = status && status.groups && status.groups[g.id];
    if (!sums) return null;
    const parents = new Map(state.groups.map((x) => [x.id, x.parent]));
    const under = (gid) => {
      for (let x = gid; x; x = parents.get(x)) if (x === g.id) return true;
      return false;
    };
    const wiring = new Map();
    for (const st of stations) {
      for (const c of st.connectors) wiring.set(c.connector_id, { group: st.group, lines: c.lines });
    }
    const running = {};
    for (const l of g.lines) running[l] = 0;
    for (const s of status.sessions || []) {
      const w = wiring.get(s.connector_id);
      if (!w || !under(w.group)) continue;
      for (const l of (s.learned_lines && s.learned_lines.length ? s.learned_lines : w.lines)) {
        if (l in running) running[l] += s.limit_a || 0;
      }
    }
    return g.lines.map((l) => {
      const total = sums.limits_in_force_a[l] || 0;
      return { line: l, running: Math.min(running[l], total), idle: Math.max(0, total - running[l]), total };
    });
  }

  /** Per line, a bar: running sessions' limits, then the idle connectors' reserve
   * (hatched), against the capacity (a mark). Widths are set through the CSSOM: the
   * page's policy allows no inline style. */
  function drawReserveBars(box, g, rows) {
    box.textContent = "";
    if (!rows) return;
    const cap = g.capacity_a;
    const top = Math.max(cap || 0, ...rows.map((r) => r.total), 1);
    const pct = (x) => (100 * x / top).toFixed(2) + "%";
    const span = (cls, parent) => {
      const el = document.createElement("span");
      el.className = cls;
      parent.appendChild(el);
      return el;
    };
    for (const r of rows) {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.title = r.line + ": limits in force " + fmt(r.total, 0) + " A = running sessions " +
        fmt(r.running, 0) + " A + reserved for idle connectors " + fmt(r.idle, 0) + " A" +
        (cap === null ? "" : "; capacity in force " + fmt(cap, 0) + " A") + ". " + IDLE_RESERVE_TIP;
      span("bar-line", bar).textContent = r.line;
      const track = span("bar-track", bar);
      span("seg running", track).style.width = pct(r.running);
      span("seg idle", track).style.width = pct(r.idle);
      if (cap !== null) span("cap-mark", track).style.left = pct(cap);
      span("bar-text", bar).textContent = fmt(r.running, 0) + " + " + fmt(r.idle, 0) +
        " reserved = " + fmt(r.total, 0) + (cap === null ? "" : " / " + fmt(cap, 0)) + " A";
      box.appendChild(bar);
    }
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function renderGroups(tree, stations) {
    state.groups = tree.groups;
    const box = $("#groups");
    for (const g of tree.groups) {
      let card = box.querySelector('.group[data-group="' + CSS.escape(g.id) + '"]');
      if (!card) {
        card = document.createElement("div");
        card.className = "group";
        card.dataset.group = g.id;
        card.innerHTML = "<h3></h3><div class=\"facts\"></div><div class=\"bars\"></div>" +
          "<div class=\"chart\" data-version=\"0\"></div>";
        card.querySelector("h3").textContent = g.id + (g.description ? " — " + g.description : "");
        box.appendChild(card);
      }
      card.querySelector(".facts").innerHTML = groupFacts(g);
      drawReserveBars(card.querySelector(".bars"), g, groupReserve(g, stations));
    }
    const select = $("#limit-group");
    const ids = tree.groups.map((g) => g.id).join(",");
    if (select.dataset.ids !== ids) {
      const keep = select.value;
      select.innerHTML = "";
      for (const g of tree.groups) {
        const opt = document.createElement("option");
        opt.value = g.id;
        opt.textContent = g.id;
        select.appendChild(opt);
      }
      if (keep) select.value = keep;
      select.dataset.ids = ids;
    }
  }

  function renderStations(stations) {
    const body = $("#stations tbody");
    const rows = [];
    for (const st of stations) {
      for (const c of st.connectors) {
        const draw = Object.keys(c.draw_a).sort().map((l) => fmt(c.draw_a[l], 1)).join(" / ") || "–";
        const prev = state.lastLimits.get(c.connector_id);
        const changed = prev !== undefined && prev !== c.limit_a;
        state.lastLimits.set(c.connector_id, c.limit_a);
        const status = st.connected ? c.status : "Offline";
        const s = state.sessions.get(c.connector_id);
        rows.push(
          '<tr data-connector="' + escapeHtml(c.connector_id) + '"' + (changed ? ' class="changed"' : "") + ">" +
          "<td>" + escapeHtml(c.connector_id) + "</td>" +
          '<td class="station">' + escapeHtml(st.station_id) + (st.protocol ? ' <span class="muted">' + escapeHtml(st.protocol) + "</span>" : "") + "</td>" +
          '<td class="state state-' + escapeHtml(status) + '">' + escapeHtml(status) + "</td>" +
          '<td class="num limit">' + fmt(c.limit_a, 1) + "</td>" +
          '<td class="num draw">' + draw + (c.not_following ? ' <span class="chip bad" title="' + escapeHtml(c.not_following) + '">ignores its limit</span>' : "") + "</td>" +
          sessionCells(c, s) + modeCell(s) +
          '<td class="profile">' + (c.profile ? escapeHtml(c.profile.outcome) : "–") + "</td></tr>"
        );
      }
    }
    body.innerHTML = rows.join("");
  }

  /** The car on a connector as an operator knows it: its idTag, when it leaves,
   * the energy delivered and wanted (the transaction id in the tooltip). */
  function sessionCells(c, s) {
    if (!c.session_id) return '<td class="car">–</td><td class="departs">–</td><td class="num energy">–</td>';
    const tip = ' title="session ' + escapeHtml(c.session_id) + '"';
    const tag = s && s.id_tag ? escapeHtml(s.id_tag) : "car";
    const est = (flag) => (flag ? ' <span class="muted">est.</span>' : "");
    const departs = s && s.departure ? escapeHtml(dayTimeText(s.departure)) + est(s.departure_estimated) : "–";
    const delivered = s ? s.energy_kwh : c.energy_kwh;
    const wanted = s && s.energy_need_kwh !== null ? s.energy_kwh + s.energy_need_kwh : null;
    const energy = fmt(delivered, 1) + (wanted === null ? "" : " / " + fmt(wanted, 1) +
      est(s.energy_need_estimated));
    return '<td class="car"' + tip + ">" + tag + (s && s.paused ? ' <span class="chip warn">paused</span>' : "") +
      '</td><td class="departs">' + departs + '</td><td class="num energy">' + energy + "</td>";
  }

  const MODES = ["fast", "solar", "min+solar"];

  /** A running session's charging mode, as a choice the operator can change. */
  function modeCell(s) {
    if (!s) return '<td class="mode">–</td>';
    const options = MODES.map((m) =>
      '<option value="' + m + '"' + (m === s.charge_mode ? " selected" : "") + ">" + m + "</option>");
    return '<td class="mode"><select class="charge-mode" data-session="' + escapeHtml(s.session_id) +
      '" aria-label="charging mode of ' + escapeHtml(s.session_id) + '">' + options.join("") + "</select></td>";
  }

  async function setMode(sessionId, mode, select) {
    const out = $("#mode-result");
    if (!writeToken(out)) return;
    try {
      const res = await api("/api/sessions/" + encodeURIComponent(sessionId), {
        method: "PATCH",
        body: JSON.stringify({ charge_mode: mode }),
        headers: { "Content-Type": "application/json" },
      });
      state.sessions.set(res.session.connector_id, res.session);
      out.className = "ok";
      out.textContent = sessionId + " now charges " + res.session.charge_mode + " · plan #" +
        res.plan.plan_id + " " + res.plan.status;
    } catch (e) {
      const s = [...state.sessions.values()].find((x) => x.session_id === sessionId);
      if (select && s) select.value = s.charge_mode;
      failed(out, e);
    }
  }

  function onSnapshot(snap) {
    state.snapshots += 1;
    document.body.dataset.snapshots = String(state.snapshots);
    renderStatus(snap.status);
    state.stations = snap.stations;
    renderGroups(snap.groups, snap.stations);
    renderStations(snap.stations);
    scheduleTimelines();
  }

  // --- charts ---------------------------------------------------------------------------

  function scheduleTimelines() {
    if (state.timelineTimer) return;
    state.timelineTimer = setTimeout(() => {
      state.timelineTimer = null;
      refreshTimelines();
    }, TIMELINE_DEBOUNCE_MS);
  }

  async function refreshTimelines() {
    if (state.timelineBusy) { state.timelineAgain = true; return; }
    state.timelineBusy = true;
    try {
      const [sessions, ...timelines] = await Promise.all([
        api("/api/sessions?active=true"),
        ...state.groups.map((g) =>
          api("/api/groups/" + encodeURIComponent(g.id) + "/timeline?hours=" + HISTORY_HOURS)),
      ]);
      state.sessions = new Map(sessions.map((s) => [s.connector_id, s]));
      if (state.stations) renderStations(state.stations);
      for (const tl of timelines) drawTimeline(tl);
      state.timelineVersion += 1;
    } catch (e) {
      console.warn("timeline", e);
    } finally {
      state.timelineBusy = false;
      if (state.timelineAgain) { state.timelineAgain = false; scheduleTimelines(); }
    }
  }

  function nowMarker(nowSec) {
    return {
      hooks: {
        draw: [(u) => {
          const x = u.valToPos(nowSec(), "x", true);
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#98a2b3";
          ctx.setLineDash([2, 4]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }],
      },
    };
  }

  function drawTimeline(tl) {
    const card = document.querySelector('.group[data-group="' + CSS.escape(tl.group_id) + '"]');
    if (!card) return;
    const el = card.querySelector(".chart");
    const xs = [], cap = [];
    const planned = {}, measured = {};
    for (const l of tl.lines) { planned[l] = []; measured[l] = []; }
    let lastMeasured = null;
    for (const p of tl.points) {
      xs.push(Date.parse(p.at) / 1000);
      cap.push(p.capacity_a);
      for (const l of tl.lines) {
        planned[l].push(p.planned_a ? (p.planned_a[l] ?? null) : null);
        measured[l].push(p.measured_a ? (p.measured_a[l] ?? null) : null);
      }
      if (p.measured_a) lastMeasured = p.measured_a;
    }
    const data = [xs, cap];
    for (const l of tl.lines) data.push(planned[l]);
    for (const l of tl.lines) data.push(measured[l]);
    const key = tl.lines.join(",");
    let entry = state.charts.get(tl.group_id);
    const nowSec = Date.parse(tl.now) / 1000;
    if (entry && entry.key === key) {
      entry.now = nowSec;
      entry.plot.setData(data);
    } else {
      if (entry) entry.plot.destroy();
      entry = { key, now: nowSec, plot: null };
      const series = [{}, {
        label: "capacity A", stroke: CAPACITY_COLOUR, width: 2,
        paths: uPlot.paths.stepped({ align: 1 }),
      }];
      for (const l of tl.lines) {
        series.push({ label: "planned " + l, stroke: LINE_COLOURS[l], dash: [6, 4], width: 1.5,
          paths: uPlot.paths.stepped({ align: 1 }) });
      }
      for (const l of tl.lines) {
        series.push({ label: "measured " + l, stroke: LINE_COLOURS[l], width: 1.5 });
      }
      const e = entry;
      entry.plot = new uPlot({
        width: chartWidth(el),
        height: 220,
        series,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), state.tz),
        scales: {
          x: { time: true, range: (u, min, max) => xWindow(e, min, max) },
          y: { range: (u, min, max) => [0, Math.max(10, (max || 0) * 1.1)] },
        },
        axes: [
          {
            space: 64,
            size: 56,
            values: (u, splits) => {
              const labels = splits.map(axisLabel);
              // what the axis reads, and where (for tests: the canvas has no text)
              el.dataset.axisLabels = JSON.stringify(labels);
              el.dataset.axisTimes = JSON.stringify(splits);
              return labels;
            },
          },
          { label: "A per line", size: 50 },
        ],
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        plugins: [nowMarker(() => e.now)],
      }, data, el);
      state.charts.set(tl.group_id, entry);
    }
    el.dataset.version = String(Number(el.dataset.version || "0") + 1);
    el.dataset.points = String(xs.length);
    el.dataset.lastMeasured = lastMeasured ? JSON.stringify(lastMeasured) : "";
  }

  const chartWidth = (el) => Math.max(200, el.clientWidth || 420);

  /** The chart's time window: the near view around now, or all the data. */
  function xWindow(entry, min, max) {
    if (state.view === "all" || !entry.now) return [min, max];
    return [entry.now - NEAR_VIEW.before, entry.now + NEAR_VIEW.after];
  }

  /** An axis label: the site's time, with the weekday at midnight. */
  function axisLabel(sec) {
    const d = new Date(sec * 1000);
    const f = new Intl.DateTimeFormat("en-US", { timeZone: state.tz, hourCycle: "h23",
      hour: "numeric", minute: "numeric" });
    const [h, m] = f.format(d).split(":").map(Number);
    const t = formatter("time").format(d);
    return h % 24 === 0 && m === 0 ? t + "\n" + formatter("weekday").format(d) : t;
  }

  function setView(view) {
    state.view = view;
    document.querySelectorAll("#view-buttons button").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.view === view));
    });
    for (const entry of state.charts.values()) {
      const xs = entry.plot.data[0];
      if (!xs.length) continue;
      const [min, max] = xWindow(entry, xs[0], xs[xs.length - 1]);
      entry.plot.setScale("x", { min, max });
    }
  }

  window.addEventListener("resize", () => {
    for (const [gid, entry] of state.charts) {
      const el = document.querySelector('.group[data-group="' + CSS.escape(gid) + '"] .chart');
      if (el) entry.plot.setSize({ width: chartWidth(el), height: 220 });
    }
  });

  // --- live stream ----------------------------------------------------------------------

  async function follow() {
    for (;;) {
      try {
        const live = scoped("/api/live");
        const res = await fetch(live, { headers: headers({ Accept: "text/event-stream" }) });
        if (res.status === 401 || res.status === 403) {
          setChip($("#live-state"), "reads need a token: enter it below", "off");
          await new Promise((r) => setTimeout(r, 3000));
          continue;
        }
        if (!res.ok) throw new Error("live: " + res.status);
        setChip($("#live-state"), "live", "ok");
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            handleEvent(block);
          }
        }
      } catch (e) {
        console.warn(e);
      }
      setChip($("#live-state"), "reconnecting…", "off");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  function handleEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (name === "snapshot" && data.length) onSnapshot(JSON.parse(data.join("\n")));
  }

  // --- limit form -----------------------------------------------------------------------

  const localToIso = siteTimeToIso; // the form's times are the site's

  function refuse(out, message, field) {
    out.className = "error";
    out.textContent = message;
    if (field) $(field).focus();
  }

  /** The write token (kept for the session), or null after saying it is missing. */
  function writeToken(out) {
    const t = $("#token").value.trim();
    if (t) sessionStorage.setItem("gridshare-token", t);
    if (token()) return token();
    refuse(out, "Enter a token with the write role.", "#token");
    return null;
  }

  function failed(out, e) {
    refuse(out, e.message);
    if (e.status === 401 || e.status === 403) sessionStorage.removeItem("gridshare-token");
  }

  async function submitLimit(clear) {
    const out = $("#limit-result");
    if (!writeToken(out)) return;
    const gid = $("#limit-group").value;
    const path = "/api/groups/" + encodeURIComponent(gid) + "/limit";
    try {
      let res;
      if (clear) {
        res = await api(path, { method: "DELETE" });
      } else {
        const body = {};
        const a = $("#limit-a").value, kw = $("#limit-kw").value;
        if (a !== "") body.limit_a = Number(a);
        if (kw !== "") body.limit_kw = Number(kw);
        const start = localToIso($("#limit-start").value), end = localToIso($("#limit-end").value);
        if (start) body.start = start;
        if (end) body.end = end;
        res = await api(path, {
          method: "PUT",
          body: JSON.stringify(body),
          headers: { "Content-Type": "application/json" },
        });
      }
      out.className = "ok";
      const paused = res.paused_sessions.length ? " · paused: " + res.paused_sessions.join(", ") : "";
      out.textContent = (clear ? "Cleared" : "Set") + " on " + gid + " · plan #" + res.plan.plan_id +
        " " + res.plan.status + " · unmet " + fmt(res.plan.unmet_kwh, 1) + " kWh" + paused;
    } catch (e) {
      failed(out, e);
    }
  }

  // Ask the group's DSO (OSCP AdjustGroupCapacityForecast) for the capacity in the
  // form over its window; the site changes only once the DSO sends a new forecast.
  async function askDso() {
    const out = $("#limit-result");
    if (!writeToken(out)) return;
    const gid = $("#limit-group").value;
    const a = $("#limit-a").value, kw = $("#limit-kw").value;
    if ((a === "") === (kw === "")) {
      refuse(out, "Ask the DSO for either a limit per line (A) or a power limit (kW).", "#limit-a");
      return;
    }
    const end = localToIso($("#limit-end").value);
    if (!end) {
      refuse(out, "Give the end of the window (Until).", "#limit-end");
      return;
    }
    const body = { capacity: Number(a !== "" ? a : kw), unit: a !== "" ? "A" : "KW", end: end };
    const start = localToIso($("#limit-start").value);
    if (start) body.start = start;
    try {
      const res = await api("/api/groups/" + encodeURIComponent(gid) + "/adjust", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" },
      });
      out.className = "ok";
      out.textContent = "Asked the DSO for " + fmt(res.capacity, 1) + " " + res.unit + " on " + gid +
        " (" + res.oscp_group_id + ") until " + formatter("full").format(new Date(res.end)) +
        " · sent to " + res.providers + " provider(s)";
    } catch (e) {
      failed(out, e);
    }
  }

  $("#token").addEventListener("change", () => {
    const t = $("#token").value.trim();
    if (t) sessionStorage.setItem("gridshare-token", t);
  });
  $("#limit-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitLimit(false); });
  $("#limit-clear").addEventListener("click", () => submitLimit(true));
  $("#limit-ask-dso").addEventListener("click", askDso);
  $("#stations tbody").addEventListener("change", (ev) => {
    const t = ev.target;
    if (t && t.classList && t.classList.contains("charge-mode")) setMode(t.dataset.session, t.value, t);
  });
  document.querySelectorAll("#view-buttons button").forEach((b) => {
    b.addEventListener("click", () => setView(b.dataset.view));
  });

  // The building behind the connection, when the site has meters (/api/meters
  // is served only then: the API's own description says whether it is).
  const METERS_MS = 2000;
  function perLine(v) {
    return ["L1", "L2", "L3"].map((k) => (v[k] == null ? "–" : fmt(v[k], 0))).join("/");
  }
  function renderMeters(view) {
    const el = $("#meters");
    el.replaceChildren();
    for (const g of view.groups) {
      const line = document.createElement("span");
      line.textContent = g.id + ": building " + perLine(g.non_ev_a) + " A · chargers " +
        perLine(g.ev_a) + " A · headroom " + perLine(g.headroom_a) + " A ";
      el.append(line);
      if (g.blind) {
        const chip = document.createElement("span");
        chip.className = "chip warn";
        chip.textContent = "meter stale: counted at its worst case";
        el.append(chip);
      }
      el.append(document.createElement("br"));
    }
    el.hidden = view.groups.length === 0;
  }
  async function followMeters() {
    try {
      const spec = await api("/api/openapi.json");
      if (!spec.paths || !spec.paths["/api/meters"]) return;
    } catch (e) {
      return;
    }
    const tick = async () => {
      try { renderMeters(await api("/api/meters")); } catch (e) { console.warn("meters", e); }
    };
    await tick();
    setInterval(tick, METERS_MS);
  }

  // Several sites: a picker in the header; the first site until one is picked.
  async function pickSite() {
    let sites;
    try { sites = await api("/api/sites"); } catch (e) { return true; }
    if (!Array.isArray(sites) || sites.length < 2) return true;
    if (!SITE || !sites.some((s) => s.id === SITE)) {
      location.replace("?site=" + encodeURIComponent(sites[0].id));
      return false;
    }
    const picker = document.createElement("select");
    picker.id = "site-picker";
    picker.setAttribute("aria-label", "Site");
    for (const s of sites) {
      const option = document.createElement("option");
      option.value = s.id;
      option.textContent = s.name;
      option.selected = s.id === SITE;
      picker.append(option);
    }
    picker.addEventListener("change", () => {
      location.search = "?site=" + encodeURIComponent(picker.value);
    });
    $("header h1").after(picker);
    return true;
  }

  pickSite().then((go) => {
    if (!go) return;
    follow();
    followMeters();
  });
})();
