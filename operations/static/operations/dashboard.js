// Draws the operations dashboard's charts from the JSON the page carries. Every
// category is labelled (no label is skipped for want of room), both axes are
// titled, and every bar, the longest too, carries its value at its end. The same
// numbers are in the tables and list beside each chart.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ops-charts").textContent);
  var colours = ["#005eb8", "#007f3b", "#ffb81c", "#d5281b", "#330072", "#4c6272"];
  var text = "#212b32";

  function datasets(list) {
    return list.map(function (set, index) {
      var colour = colours[index % colours.length];
      return { label: set.label, data: set.data, backgroundColor: colour, borderColor: colour };
    });
  }

  // The value of each bar, written just past its end (inside the padding kept for
  // it, so the longest bar's label is never cut off).
  var barValues = {
    id: "barValues",
    afterDatasetsDraw: function (chart) {
      if (chart.config.type !== "bar") return;
      var context = chart.ctx;
      var horizontal = chart.options.indexAxis === "y";
      context.save();
      context.fillStyle = text;
      context.font = "14px Frutiger W01, Arial, sans-serif";
      context.textBaseline = horizontal ? "middle" : "bottom";
      context.textAlign = horizontal ? "left" : "center";
      chart.data.datasets.forEach(function (set, index) {
        var meta = chart.getDatasetMeta(index);
        if (meta.hidden) return;
        meta.data.forEach(function (bar, position) {
          var value = set.data[position];
          if (!value) return;
          if (horizontal) {
            context.fillText(String(value), bar.x + 4, bar.y);
          } else {
            context.fillText(String(value), bar.x, bar.y - 2);
          }
        });
      });
      context.restore();
    }
  };

  function axis(title, category) {
    return {
      beginAtZero: !category,
      grace: category ? 0 : "12%",
      title: { display: true, text: title, color: text },
      ticks: { color: text, autoSkip: !category }
    };
  }

  function draw(id, type, chart, options) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") return;
    new Chart(canvas, {
      type: type,
      data: { labels: chart.labels, datasets: datasets(chart.datasets) },
      options: Object.assign({ animation: false, responsive: true }, options),
      plugins: [barValues]
    });
    canvas.dataset.drawn = "true";
  }

  draw("chart-hourly", "line", data.hourly, {
    scales: { x: axis("Hour (UTC)", false), y: axis("Documents", false) }
  });
  draw("chart-daily", "bar", data.daily, {
    layout: { padding: { top: 16 } },
    scales: { x: axis("Day", true), y: axis("Documents", false) }
  });
  draw("chart-states", "bar", data.states, {
    indexAxis: "y",
    layout: { padding: { right: 48 } },
    plugins: { legend: { display: false } },
    scales: { x: axis("Documents", false), y: axis("State", true) }
  });
})();
