/* AlquimistaAI dashboard: charts from server-rendered JSON, auto-submitting filters. */
(function () {
  "use strict";
  const lang = document.body.dataset.lang || "pt-BR";
  const numberFormat = new Intl.NumberFormat(lang);
  const palette = ["#5b2bbf", "#b3261e", "#14724a", "#1d4f9c", "#8a5a00", "#7a3e9d", "#00796b", "#c2185b"];

  function isoToLocal(label) {
    if (/^\d{4}-\d{2}-\d{2}$/.test(label)) {
      const [y, m, d] = label.split("-");
      return lang === "pt-BR" ? `${d}/${m}` : `${m}-${d}`;
    }
    return label;
  }

  function renderChart(canvas) {
    if (typeof Chart === "undefined") return;
    const source = document.getElementById(canvas.dataset.source);
    if (!source) return;
    const payload = JSON.parse(source.textContent);
    const kind = canvas.dataset.chart;
    const money = payload.money || null;
    const datasets = payload.series.map((s, i) => ({
      label: s.label,
      data: s.data,
      borderColor: palette[i % palette.length],
      backgroundColor: kind === "line" ? palette[i % palette.length] + "22"
        : (kind === "doughnut" ? payload.labels.map((_, j) => palette[j % palette.length]) : palette[i % palette.length]),
      fill: kind === "line" && i === 0,
      tension: 0.25,
      pointRadius: payload.labels.length > 45 ? 0 : 2,
      borderWidth: 2,
    }));
    const format = (v) => money ? new Intl.NumberFormat(lang, { style: "currency", currency: money }).format(v) : numberFormat.format(v);
    new Chart(canvas, {
      type: kind === "doughnut" ? "doughnut" : kind,
      data: { labels: payload.labels.map(isoToLocal), datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: payload.series.length > 1 || kind === "doughnut" },
                   tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${format(ctx.parsed.y ?? ctx.parsed)}` } } },
        scales: kind === "doughnut" ? {} : { y: { beginAtZero: true, ticks: { callback: (v) => format(v) } } },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(renderChart);
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  });

  window.opdash = { numberFormat: numberFormat, lang: lang };
})();
