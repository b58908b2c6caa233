// The KPI dashboard (/kpi): reads the filter form, fetches GET /api/kpi/... with the session cookie, fills
// the headline tiles and draws the charts with ECharts (served by posgate). Every chart's data can be
// downloaded as CSV. No inline script (the console's CSP allows scripts from 'self' only).
(function () {
  "use strict";
  const form = document.getElementById("kpi-filters");
  const status = document.getElementById("kpi-status");
  const charts = {};
  const tables = {};

  function yuan(fen) {
    return fen === null || fen === undefined ? "-" : (fen / 100).toLocaleString(undefined, {minimumFractionDigits: 2, maximumFractionDigits: 2});
  }
  function pct(x) {
    return x === null || x === undefined ? "-" : (x * 100).toFixed(2) + " %";
  }
  function change(x) {
    return x === null || x === undefined ? "" : (x >= 0 ? "+" : "") + (x * 100).toFixed(1) + " %";
  }
  function query() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form).entries()) {
      if (value) params.set(key, value);
    }
    return params;
  }
  async function get(path, params) {
    const response = await fetch(path + "?" + params.toString(), {credentials: "same-origin"});
    if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()));
    return response.json();
  }
  function chart(id) {
    if (!charts[id]) charts[id] = echarts.init(document.getElementById(id));
    return charts[id];
  }
  function set(id, text) {
    document.getElementById(id).textContent = text;
  }

  async function load() {
    status.textContent = "…";
    const params = query();
    try {
      const [summary, series, breakdowns, terminals] = await Promise.all([
        get("/api/kpi/summary", params),
        get("/api/kpi/series", params),
        get("/api/kpi/breakdowns", params),
        get("/api/kpi/terminals", params),
      ]);
      set("kpi-volume", yuan(summary.approved_amount_fen));
      set("kpi-volume-change", change(summary.change.approved_amount_fen));
      set("kpi-approved", summary.approved_count.toLocaleString());
      set("kpi-approved-change", change(summary.change.approved_count));
      set("kpi-rate", pct(summary.approval_rate));
      set("kpi-rate-change", change(summary.change.approval_rate));
      set("kpi-ticket", yuan(summary.average_ticket_fen));
      set("kpi-ticket-change", change(summary.change.average_ticket_fen));
      set("kpi-active", summary.active_terminals === null ? "-" : summary.active_terminals.toLocaleString());

      tables.trend = [["period", "approved_count", "approved_amount_fen", "approval_rate"]].concat(
        series.series.map((p) => [p.period, p.approved_count, p.approved_amount_fen, p.approval_rate]));
      chart("chart-trend").setOption({
        tooltip: {trigger: "axis"},
        xAxis: {type: "category", data: series.series.map((p) => p.period)},
        yAxis: [{type: "value", name: "CNY"}, {type: "value", name: "%", min: 0, max: 100}],
        series: [
          {name: "volume", type: "bar", data: series.series.map((p) => p.approved_amount_fen / 100)},
          {name: "approval rate", type: "line", yAxisIndex: 1,
           data: series.series.map((p) => p.approval_rate === null ? null : +(p.approval_rate * 100).toFixed(2))},
        ],
      }, true);

      const channels = Object.entries(breakdowns.channel_mix);
      tables.channels = [["channel", "count", "amount_fen"]].concat(channels.map(([k, v]) => [k, v.count, v.amount_fen]));
      chart("chart-channels").setOption({
        tooltip: {trigger: "item"},
        series: [{type: "pie", radius: "65%", data: channels.map(([k, v]) => ({name: k, value: v.count}))}],
      }, true);

      const codes = Object.entries(summary.by_response_code).filter(([code]) => code !== "00").sort();
      tables.codes = [["response_code", "count"]].concat(codes);
      chart("chart-codes").setOption({
        tooltip: {trigger: "axis"},
        xAxis: {type: "category", data: codes.map(([code]) => code || "--")},
        yAxis: {type: "value"},
        series: [{type: "bar", data: codes.map(([, n]) => n)}],
      }, true);

      const a = terminals.activation;
      const funnel = [["provisioned", a.provisioned], ["activated within 7 days", a.activated_within_days],
                      ["activated later", a.activated_later], ["not activated", a.not_activated]];
      tables.funnel = [["stage", "terminals"]].concat(funnel);
      chart("chart-funnel").setOption({
        tooltip: {trigger: "item"},
        series: [{type: "funnel", sort: "none", data: funnel.map(([name, value]) => ({name, value}))}],
      }, true);
      status.textContent = summary.from + " .. " + summary.to;
      document.body.dataset.kpiLoaded = params.toString();
    } catch (error) {
      status.textContent = String(error.message || error);
    }
  }

  function csv(rows) {
    return rows.map((row) => row.map((cell) => {
      const text = cell === null || cell === undefined ? "" : String(cell);
      return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    }).join(",")).join("\n") + "\n";
  }
  document.querySelectorAll("button[data-csv]").forEach((button) => {
    button.addEventListener("click", () => {
      const name = button.dataset.csv;
      const blob = new Blob([csv(tables[name] || [])], {type: "text/csv"});
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "kpi-" + name + ".csv";
      document.body.appendChild(link);
      link.click();
      link.remove();
    });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  load();
})();
