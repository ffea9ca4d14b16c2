// The dashboard: plain JavaScript, no build step. It reads only the read endpoints of
// `tokenctl serve`, with a read token the person enters once; the token lives in this tab's
// sessionStorage (gone when the tab closes) and travels only in the Authorization header,
// never in a URL. Data from the server is put in the page with textContent only: an AI type
// or user id may be any string.
(function () {
  "use strict";

  var TOKEN_KEY = "tokenctl.readToken";
  var RANGE_KEY = "tokenctl.rangeDays";
  var REFRESH_MS = 30000;
  var RECORD_HINT =
    "tokenctl record --ai-type A --tokens-in N --tokens-out N [--user-id U --model M]";

  var state = {
    token: null,
    days: 30,
    zone: undefined,
    timer: null,
    loading: false,
    charts: [],
    last: null,
  };

  var $ = function (id) {
    return document.getElementById(id);
  };

  // ---- formatting: the browser's locale for separators, the server's zone for times ----

  var intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  var pctFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  var usdFmt = new Intl.NumberFormat(undefined, {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
  // a cent is too coarse for the cost of a few requests
  var usdSmallFmt = new Intl.NumberFormat(undefined, {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 2,
    maximumFractionDigits: 4,
  });

  function int(n) {
    return n === null || n === undefined ? "–" : intFmt.format(n);
  }
  function usd(n) {
    if (n === null || n === undefined) return "–";
    return n !== 0 && Math.abs(n) < 1 ? usdSmallFmt.format(n) : usdFmt.format(n);
  }
  function dateTime(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    try {
      return new Intl.DateTimeFormat(undefined, {
        dateStyle: "medium",
        timeStyle: "short",
        timeZone: state.zone,
      }).format(d);
    } catch (e) {
      // a zone the browser does not know: its own, said so by the name shown next to it
      return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(d);
    }
  }

  // ---- small DOM helpers ----

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }
  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  }
  /// An empty state: what is missing, and the command that fills it.
  function empty(message, command) {
    var p = el("p", { class: "empty" }, [message]);
    if (command) {
      p.appendChild(document.createTextNode(": "));
      p.appendChild(el("code", { text: command }));
    }
    return p;
  }

  // ---- the API ----

  function AuthError(status, message) {
    this.status = status;
    this.message = message;
  }

  function api(path) {
    return fetch(path, {
      headers: { Authorization: "Bearer " + state.token, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    }).then(function (r) {
      return r.text().then(function (text) {
        var body = null;
        try {
          body = JSON.parse(text);
        } catch (e) {
          body = null;
        }
        if (r.status === 401 || r.status === 403) {
          throw new AuthError(r.status, body && body.error);
        }
        if (!r.ok) {
          throw new Error(path + ": " + r.status + (body && body.error ? " " + body.error : ""));
        }
        return body;
      });
    });
  }

  function load() {
    if (state.loading || !state.token) return Promise.resolve();
    state.loading = true;
    var days = state.days;
    var first = Promise.all([
      api("/api/token-usage/monthly"),
      api("/api/token-usage/alerts?active=true"),
      api("/api/token-usage/limits"),
      api("/api/usage/analytics?days=" + days),
      api("/api/token-usage/distribution"),
    ]);
    return first
      .then(function (r) {
        var status = r[0];
        // the month's cost per day: the report from the first of the status's month
        return api("/api/usage/analytics?since=" + status.month + "-01").then(function (month) {
          return {
            status: status,
            alerts: r[1],
            limits: r[2],
            report: r[3],
            distribution: r[4],
            monthReport: month,
            days: days,
          };
        });
      })
      .then(function (data) {
        state.last = data;
        showDashboard();
        render(data);
        $("problem").hidden = true;
      })
      .catch(function (e) {
        if (e instanceof AuthError) {
          signOut(
            e.status === 401
              ? "This token was not accepted: it is unknown or has been revoked. Enter a valid read token."
              : "This token may not read usage (it lacks the read scope). Enter a token created with --scope read."
          );
        } else {
          var p = $("problem");
          p.textContent =
            "Could not load the figures (" +
            (e && e.message ? e.message : String(e)) +
            "). Trying again in " +
            REFRESH_MS / 1000 +
            " s; the figures shown are from the last successful load.";
          p.hidden = false;
        }
      })
      .then(function () {
        state.loading = false;
      });
  }

  // ---- rendering ----

  function render(d) {
    state.zone = d.status.timezone || undefined;
    $("range-days").textContent = String(d.days);
    $("updated").textContent =
      "Updated " + dateTime(d.status.clock && d.status.clock.now) + " (" + (d.status.timezone || "local time") + ") · refreshes every 30 s";
    renderCards(d.report);
    renderBars(d.status);
    renderTrend(d);
    renderTop($("top-users"), d.report.top_users || [], "user_id",
      empty("No usage with a user id in this range", "tokenctl record … --user-id U"));
    renderTop($("top-models"), d.report.model_usage || [], "model",
      empty("No usage with a model in this range", "tokenctl record … --model M"));
    renderAlerts(d.alerts);
  }

  function renderCards(report) {
    var t = report.totals || {};
    $("card-requests").textContent = int(t.requests);
    $("card-tokens").textContent = int(t.tokens);
    $("card-cost").textContent = usd(t.cost_usd);
    $("card-cost-note").textContent =
      t.cost_complete === false
        ? "At least: " + int(t.unpriced_requests) + " request(s) of a model without a price (tokenctl prices set)"
        : "";
    $("card-users").textContent = int(t.unique_users);
  }

  /// One bar: used and held apart, against the limit, coloured and named by level.
  function bar(name, used, held, limit, level, cost, costComplete, isTotal) {
    var pct = limit > 0 ? (used / limit) * 100 : 0;
    var usedW = limit > 0 ? Math.min(100, pct) : 0;
    var heldW = limit > 0 ? Math.min(100 - usedW, (held / limit) * 100) : 0;
    var figures =
      int(used) + " used" + (held > 0 ? " + " + int(held) + " held" : "") +
      (limit > 0 ? " of " + int(limit) + " (" + pctFmt.format(pct) + " %)" : " (no limit)") +
      " · " + usd(cost) + (costComplete === false ? " or more" : "");
    var track = el("div", { class: "track", "aria-hidden": "true" }, [
      el("div", { class: "used", style: "width:" + usedW.toFixed(2) + "%" }),
      el("div", { class: "held", style: "width:" + heldW.toFixed(2) + "%" }),
    ]);
    return el("li", { class: "level-" + level + (isTotal ? " total" : ""), "data-ai-type": name }, [
      el("div", { class: "bar-head" }, [
        el("span", { class: "bar-name", text: isTotal ? "Total" : name }),
        el("span", { class: "level", text: level }),
      ]),
      el("div", { class: "bar-figures", text: figures }),
      track,
    ]);
  }

  function renderBars(status) {
    $("month").textContent = status.month;
    var ul = clear($("bars"));
    var types = status.ai_types || [];
    if (types.length === 0) {
      ul.appendChild(el("li", {}, [empty("No usage yet this month: record some with", RECORD_HINT)]));
    }
    types.forEach(function (a) {
      ul.appendChild(bar(a.ai_type, a.total_tokens, a.reserved_tokens, a.monthly_limit, a.level,
        a.cost_usd, a.cost_complete, false));
    });
    var g = status.global;
    ul.appendChild(bar("*", g.total_tokens, g.reserved_tokens, g.enforced_limit, g.level,
      g.cost_usd, g.cost_complete, true));
  }

  /// `YYYY-MM-DD` as seconds at UTC midnight: charts show dates, never shifted by a zone.
  function daySeconds(date) {
    var p = date.split("-").map(Number);
    return Date.UTC(p[0], p[1] - 1, p[2]) / 1000;
  }

  function pacingOn(d) {
    var rl = d.distribution.rate_limiting_status || {};
    if (rl.pacing) return true;
    var l = d.limits || {};
    if (l.default && l.default.pacing) return true;
    if (l.global && l.global.pacing) return true;
    return (l.ai_types || []).some(function (a) {
      return a.pacing;
    });
  }

  function renderTrend(d) {
    state.charts.forEach(function (c) {
      c.destroy();
    });
    state.charts = [];
    var month = d.status.month;
    var p = month.split("-").map(Number);
    var daysInMonth = new Date(Date.UTC(p[0], p[1], 0)).getUTCDate();
    var byDay = {};
    (d.distribution.monthly_distribution.daily_usage_data || []).forEach(function (u) {
      byDay[u.date] = { tokens: u.tokens, requests: u.requests, cost: null };
    });
    ((d.monthReport && d.monthReport.daily_usage) || []).forEach(function (u) {
      // the report lists every day, those without usage too
      if (u.date.indexOf(month) !== 0 || (!byDay[u.date] && !u.total_requests)) return;
      byDay[u.date] = byDay[u.date] || { tokens: u.total_tokens, requests: u.total_requests, cost: null };
      byDay[u.date].cost = u.total_cost;
    });
    var today = (d.distribution.day || "").slice(0, 10);
    var g = d.status.global;
    var paced = pacingOn(d);

    var xs = [], cumulative = [], allowance = [], projection = [], limit = [];
    var sum = 0;
    var rows = [];
    for (var i = 1; i <= daysInMonth; i++) {
      var date = month + "-" + (i < 10 ? "0" + i : String(i));
      var u = byDay[date];
      xs.push(daySeconds(date));
      if (date <= today || !today) {
        sum += u ? u.tokens : 0;
        cumulative.push(sum);
      } else {
        cumulative.push(null);
      }
      // the server's pacing rule (domain/pacing.rs): the month's limit times the part of the
      // month gone, plus one day's even share; here at the end of each day
      allowance.push(paced && g.enforced_limit > 0
        ? Math.min(g.enforced_limit,
            Math.round((g.enforced_limit * i) / daysInMonth) + Math.ceil(g.enforced_limit / daysInMonth))
        : null);
      limit.push(g.enforced_limit > 0 ? g.enforced_limit : null);
      if (u) rows.push([date, u]);
    }
    // the projection: from today's total to the burn rate's month end
    var projected = g.projected_month_total;
    var todayIdx = today ? Number(today.slice(8, 10)) - 1 : -1;
    for (var j = 0; j < daysInMonth; j++) {
      projection.push(
        projected !== null && projected !== undefined && todayIdx >= 0 && j >= todayIdx
          ? Math.round(cumulative[todayIdx] + ((projected - cumulative[todayIdx]) * (j - todayIdx)) / Math.max(1, daysInMonth - 1 - todayIdx))
          : null
      );
    }

    var notes = [];
    if (projected !== null && projected !== undefined) {
      notes.push("Projected month end at the current burn rate: " + int(projected) + " tokens" +
        (g.enforced_limit > 0 ? " (limit " + int(g.enforced_limit) + ")" : "") + ".");
    }
    notes.push(paced ? "Pacing is on: the dotted line is the paced allowance." : "Pacing is off.");
    $("trend-note").textContent = notes.join(" ");

    var tbody = clear($("trend-table").tBodies[0]);
    rows.forEach(function (r) {
      tbody.appendChild(el("tr", {}, [
        el("th", { scope: "row", text: r[0] }),
        el("td", { text: int(r[1].tokens) }),
        el("td", { text: int(r[1].requests) }),
        el("td", { text: usd(r[1].cost) }),
      ]));
    });

    var monthBox = clear($("chart-month"));
    var dailyBox = clear($("chart-daily"));
    var rangeDays = rangeTrend(d.report, d.days);
    if (rows.length === 0) {
      monthBox.appendChild(empty("No usage this month yet: record some with", RECORD_HINT));
      return;
    }
    if (typeof window.uPlot !== "function") {
      monthBox.appendChild(empty("The charts could not load; the figures are in the table below"));
      return;
    }
    var css = getComputedStyle(document.documentElement);
    var color = function (name) {
      return css.getPropertyValue(name).trim();
    };
    var axis = function (extra) {
      var a = { stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 }, ticks: { stroke: color("--line") } };
      Object.keys(extra || {}).forEach(function (k) {
        a[k] = extra[k];
      });
      return a;
    };
    var width = Math.max(280, monthBox.clientWidth || 600);
    var utc = function (ts) {
      return window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
    };
    // wide enough for the longest label (7-digit totals were cut at a fixed width)
    var labelSize = function (u, values) {
      var longest = (values || []).reduce(function (n, v) { return Math.max(n, String(v).length); }, 0);
      return Math.max(50, longest * 8 + 20);
    };
    var fromZero = function (u, min, max) {
      return [0, max > 0 ? max * 1.1 : 1];
    };
    var tokensAxis = axis({ values: function (u, vals) { return vals.map(int); }, size: labelSize });

    var monthSeries = [
      {},
      { label: "Used (cumulative)", stroke: color("--accent"), width: 2, value: function (u, v) { return int(v); } },
      { label: "Projected", stroke: color("--critical"), dash: [6, 4], width: 2, value: function (u, v) { return int(v); } },
      { label: "Limit", stroke: color("--emergency"), width: 1, points: { show: false }, value: function (u, v) { return int(v); } },
    ];
    var monthData = [xs, cumulative, projection, limit];
    if (paced) {
      monthSeries.push({ label: "Paced allowance", stroke: color("--ok"), dash: [2, 4], width: 2, points: { show: false }, value: function (u, v) { return int(v); } });
      monthData.push(allowance);
    }
    state.charts.push(new window.uPlot({
      width: width,
      height: 240,
      tzDate: utc,
      series: monthSeries,
      axes: [axis(), tokensAxis],
    }, monthData, monthBox));

    state.charts.push(new window.uPlot({
      width: width,
      height: 220,
      tzDate: utc,
      series: [
        {},
        { label: "Tokens per day", stroke: color("--accent"), fill: color("--accent") + "80",
          paths: window.uPlot.paths.bars({ size: [0.6, 40] }), value: function (u, v) { return int(v); } },
        { label: "Cost per day", stroke: color("--warning"), width: 2, scale: "usd", value: function (u, v) { return usd(v); } },
      ],
      // bars from zero: a day's height is its share, not its distance from the quietest day
      scales: { y: { range: fromZero }, usd: { range: fromZero } },
      axes: [axis(), tokensAxis,
        axis({ scale: "usd", side: 1, grid: { show: false }, size: labelSize, values: function (u, vals) { return vals.map(usd); } })],
    }, rangeDays.data, dailyBox));
  }

  // Tokens and cost per day over the range chosen (7, 30 or 90 days): the report's daily
  // usage, every day of it, quiet days at zero.
  function rangeTrend(report, days) {
    var xs = [], tokens = [], cost = [];
    (report.daily_usage || []).forEach(function (u) {
      xs.push(daySeconds(u.date));
      tokens.push(u.total_tokens);
      cost.push(u.total_cost);
    });
    $("daily-note").textContent = "Tokens and cost per day, the last " + days + " days.";
    $("chart-daily").dataset.days = String(xs.length);
    return { data: [xs, tokens, cost] };
  }

  function renderTop(table, rows, key, emptyState) {
    var tbody = clear(table.tBodies[0]);
    if (rows.length === 0) {
      var td = el("td", { colspan: "4" }, [emptyState]);
      tbody.appendChild(el("tr", {}, [td]));
      return;
    }
    rows
      .slice()
      .sort(function (a, b) {
        return (b.total_cost || 0) - (a.total_cost || 0) || b.total_tokens - a.total_tokens;
      })
      .forEach(function (r) {
        tbody.appendChild(el("tr", {}, [
          el("th", { scope: "row", text: r[key] === null || r[key] === undefined ? "(" + (key === "model" ? "no model" : "no user id") + ")" : String(r[key]) }),
          el("td", { text: int(r.total_tokens) }),
          el("td", { text: int(r.request_count) }),
          // a model without a price is never shown as a plain $0: its cost is a floor
          el("td", { text: usd(r.total_cost) + (r.cost_complete === false ? " + unpriced" : "") }),
        ]));
      });
  }

  function renderAlerts(report) {
    var ul = clear($("alerts"));
    var alerts = (report && report.alerts) || [];
    if (alerts.length === 0) {
      ul.appendChild(el("li", {}, [empty("No active alerts: every AI type is below its warning threshold")]));
      return;
    }
    alerts.forEach(function (a) {
      ul.appendChild(el("li", { class: "level-" + a.level }, [
        el("strong", { text: (a.ai_type === "*" ? "Total" : a.ai_type) + " · " }),
        el("span", { class: "level", text: a.level }),
        el("div", { text: a.message }),
        a.recommended_action ? el("div", { class: "note", text: a.recommended_action }) : null,
        a.created_at ? el("div", { class: "note", text: "Since " + dateTime(a.created_at) }) : null,
      ]));
    });
  }

  // ---- signing in and out, the range, the refresh ----

  function showDashboard() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("controls").hidden = false;
  }

  function signOut(message) {
    state.token = null;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* storage unavailable: the token was only in memory */
    }
    stopTimer();
    $("main").hidden = true;
    $("controls").hidden = true;
    $("updated").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    var input = $("token");
    input.value = "";
    input.focus();
  }

  function stopTimer() {
    if (state.timer !== null) {
      clearInterval(state.timer);
      state.timer = null;
    }
  }

  function startTimer() {
    stopTimer();
    state.timer = setInterval(function () {
      if (!document.hidden) load();
    }, REFRESH_MS);
  }

  function start(token) {
    state.token = token;
    $("login-error").textContent = "";
    load().then(function () {
      if (state.token) {
        startTimer();
        if (!$("main").hidden && document.activeElement === $("token")) $("main").focus();
      }
    });
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var token = $("token").value.trim();
    if (!token) return;
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (e) {
      /* private mode without storage: kept in memory for this page only */
    }
    $("token").value = "";
    start(token);
  });

  $("forget").addEventListener("click", function () {
    signOut("The token was forgotten. Enter a read token to see the dashboard again.");
  });
  $("refresh").addEventListener("click", function () {
    load();
  });
  Array.prototype.forEach.call(document.querySelectorAll('input[name="range"]'), function (r) {
    r.addEventListener("change", function () {
      state.days = Number(r.value);
      try {
        sessionStorage.setItem(RANGE_KEY, r.value);
      } catch (e) {
        /* the range is only remembered when storage is available */
      }
      load();
    });
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && state.token) load();
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (state.last) renderTrend(state.last);
    }, 200);
  });

  var saved = null;
  try {
    saved = sessionStorage.getItem(TOKEN_KEY);
    var range = sessionStorage.getItem(RANGE_KEY);
    if (range === "7" || range === "30" || range === "90") {
      state.days = Number(range);
      document.querySelector('input[name="range"][value="' + range + '"]').checked = true;
    }
  } catch (e) {
    saved = null;
  }
  if (saved) {
    start(saved);
  } else {
    $("login").hidden = false;
    $("token").focus();
  }
})();
