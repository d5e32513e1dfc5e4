// The job panel's live progress bar (unlearning/job_panel.html): polls the request's API resource
// every 2 s. A file, not an inline <script>: the Content-Security-Policy allows script-src 'self' only.
(function () {
  var box = document.getElementById("job-progress");
  if (!box || !window.fetch) { return; }
  var bar = document.getElementById("job-bar");
  function text(id, value) { var node = document.getElementById(id); if (node) { node.textContent = value; } }
  function tick() {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data || !data.progress) { return; }
        var p = data.progress;
        if (p.status !== box.dataset.status || String(p.attempt) !== box.dataset.attempt || data.status !== box.dataset.requestStatus) {
          window.location.reload();
          return;
        }
        bar.value = p.percent;
        bar.textContent = Math.round(p.percent) + "%";
        text("job-percent", Math.round(p.percent) + "%");
        text("job-phase", p.phase_label);
        text("job-steps", p.total ? " · step " + p.step + " of " + p.total : "");
        text("job-loss", p.loss === null ? "" : " · loss " + p.loss.toFixed(4));
      })
      .catch(function () {})
      .then(function () { window.setTimeout(tick, 2000); });
  }
  window.setTimeout(tick, 2000);
})();
