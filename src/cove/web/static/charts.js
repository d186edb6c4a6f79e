// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID">, on load and after each htmx swap.
// The JSON is {type, labels, series: [{label, data, colour?}], stacked?, y_label?, integer?}; a series without a
// colour of its own (a rating's red or green) takes the next of a palette with enough contrast against the page's
// white; integer (counts) keeps the axis to whole numbers.
(function () {
  "use strict";
  var PALETTE = ["#0b5cad", "#b3261e", "#1b7a3a", "#7a4fb3", "#9a5b00", "#00707a", "#5c5c5c", "#a1307a"];

  function draw(canvas) {
    if (canvas.dataset.drawn === "1" || typeof Chart === "undefined") return;
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    var spec = JSON.parse(source.textContent);
    var type = spec.type || "line";
    canvas.dataset.drawn = "1";
    new Chart(canvas, {
      type: type,
      data: {
        labels: spec.labels,
        datasets: spec.series.map(function (s, i) {
          var colour = s.colour || PALETTE[i % PALETTE.length];
          return { label: s.label, data: s.data, borderColor: colour, backgroundColor: colour,
                   fill: false, tension: 0.2, pointRadius: spec.labels.length > 40 ? 0 : 3 };
        })
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {
          x: { stacked: !!spec.stacked, title: { display: !!spec.x_label, text: spec.x_label || "" } },
          y: { stacked: !!spec.stacked, beginAtZero: true, title: { display: !!spec.y_label, text: spec.y_label || "" },
               ticks: spec.integer ? { precision: 0 } : {} }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
})();
