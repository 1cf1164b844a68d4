// Draws the operations dashboard's charts from the JSON the page carries.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ops-charts").textContent);
  var colours = ["#005eb8", "#007f3b", "#ffb81c", "#d5281b", "#330072", "#4c6272"];
  function datasets(list) {
    return list.map(function (set, index) {
      var colour = colours[index % colours.length];
      return { label: set.label, data: set.data, backgroundColor: colour, borderColor: colour };
    });
  }
  function draw(id, type, chart, extra) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") return;
    new Chart(canvas, Object.assign({
      type: type,
      data: { labels: chart.labels, datasets: datasets(chart.datasets) },
      options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } }
    }, extra || {}));
    canvas.dataset.drawn = "true";
  }
  draw("chart-hourly", "line", data.hourly);
  draw("chart-daily", "bar", data.daily);
  draw("chart-states", "bar", data.states, {
    options: { animation: false, responsive: true, indexAxis: "y", plugins: { legend: { display: false } } }
  });
})();
