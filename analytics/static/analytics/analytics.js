/* The analytics page's charts, drawn by the vendored Chart.js from the figures the page embeds.
   Amounts arrive as exact decimal strings; only the drawing turns them into floats. */
(function () {
  "use strict";

  function label(iso, bucket) {
    var text = iso.replace("T", " ").slice(0, 16);
    return bucket === "hour" ? text.slice(5) : text.slice(0, 10);
  }

  function numbers(values) {
    return values.map(Number);
  }

  function draw() {
    var source = document.getElementById("analytics-data");
    if (!source || typeof Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var money = { type: "linear", position: "left", title: { display: true, text: "USD" } };
    var common = { responsive: true, maintainAspectRatio: false, animation: false, interaction: { mode: "index", intersect: false } };
    var charts = {};

    charts.usage = new Chart(document.getElementById("chart-usage"), {
      data: {
        labels: data.usage.labels.map(function (iso) { return label(iso, data.bucket); }),
        datasets: [
          { type: "bar", label: "requests", data: data.usage.requests, yAxisID: "requests", backgroundColor: "rgba(121, 174, 200, 0.5)" },
          { type: "bar", label: "errors", data: data.usage.errors, yAxisID: "requests", backgroundColor: "rgba(186, 33, 33, 0.6)" },
          { type: "line", label: "revenue", data: numbers(data.usage.revenue), yAxisID: "usd", borderColor: "#417690", tension: 0.2 },
          { type: "line", label: "upstream cost", data: numbers(data.usage.upstream_cost), yAxisID: "usd", borderColor: "#c47f17", tension: 0.2 },
          { type: "line", label: "margin", data: numbers(data.usage.margin), yAxisID: "usd", borderColor: "#2e8540", tension: 0.2 }
        ]
      },
      options: Object.assign({}, common, {
        scales: {
          requests: { type: "linear", position: "right", beginAtZero: true, title: { display: true, text: "requests" }, grid: { drawOnChartArea: false } },
          usd: Object.assign({}, money, { beginAtZero: true })
        }
      })
    });

    charts.breakdown = new Chart(document.getElementById("chart-breakdown"), {
      type: "bar",
      data: {
        labels: data.breakdown.labels,
        datasets: [
          { label: "revenue", data: numbers(data.breakdown.revenue), backgroundColor: "#417690" },
          { label: "upstream cost", data: numbers(data.breakdown.upstream_cost), backgroundColor: "#c47f17" },
          { label: "margin", data: numbers(data.breakdown.margin), backgroundColor: "#2e8540" }
        ]
      },
      options: Object.assign({}, common, { indexAxis: "y", scales: { x: money } })
    });

    charts.latency = new Chart(document.getElementById("chart-latency"), {
      type: "bar",
      data: {
        labels: data.latency.labels,
        datasets: [
          { label: "p50", data: data.latency.p50, backgroundColor: "#79aec8" },
          { label: "p95", data: data.latency.p95, backgroundColor: "#417690" },
          { label: "p99", data: data.latency.p99, backgroundColor: "#264b5d" }
        ]
      },
      options: Object.assign({}, common, { scales: { y: { beginAtZero: true, title: { display: true, text: "ms (bucket bound)" } } } })
    });

    var colours = { topup: "#2e8540", refund: "#ba2121", promo: "#79aec8", adjustment: "#c47f17" };
    charts.ledger = new Chart(document.getElementById("chart-ledger"), {
      type: "bar",
      data: {
        labels: data.ledger.labels.map(function (iso) { return label(iso, "day"); }),
        datasets: Object.keys(data.ledger.series).map(function (kind) {
          return { label: kind, data: numbers(data.ledger.series[kind]), backgroundColor: colours[kind] || "#999" };
        })
      },
      options: Object.assign({}, common, { scales: { x: { stacked: true }, y: Object.assign({}, money, { stacked: true }) } })
    });

    window.analyticsCharts = charts;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
