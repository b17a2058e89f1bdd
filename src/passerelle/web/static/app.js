// Draws the charts the pages describe in data attributes (no inline script on the pages).
function drawCharts() {
  if (!window.Chart) return;
  document.querySelectorAll("canvas.weights:not([data-drawn])").forEach((canvas) => {
    canvas.dataset.drawn = "1";
    const values = JSON.parse(canvas.dataset.values);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: JSON.parse(canvas.dataset.labels),
        datasets: [{
          label: canvas.dataset.title, data: values,
          backgroundColor: values.map((v) => (v >= 0 ? "#1a6b32" : "#a4161a")),
        }],
      },
      options: { indexAxis: "y", animation: false, plugins: { legend: { display: false } } },
    });
  });
}
document.addEventListener("DOMContentLoaded", drawCharts);
document.addEventListener("htmx:afterSwap", drawCharts);
