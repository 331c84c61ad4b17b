// Live progress of one run: polls the API (with the session cookie) until the run ends,
// then reloads the page so its errors and final counts show.
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box) { return; }
  var run = box.getAttribute("data-run");
  function show(data) {
    var r = data.run, c = r.counts;
    box.textContent = "";
    var p = document.createElement("p");
    p.id = "live-status";
    p.textContent = "Run " + r.id + " is " + r.status + ": " + c.created + " created, " + c.updated +
      " updated, " + c.deactivated + " deactivated, " + c.unchanged + " unchanged, " + c.errors + " errors.";
    box.appendChild(p);
    // Where the run is (kept on its row as it goes): stage, tenant, pages, records and requests.
    var g = r.progress || {};
    if (g.stage && !data.finished) {
      var q = document.createElement("p");
      q.id = "live-progress";
      q.textContent = "Now " + g.stage + (g.tenant ? " tenant " + g.tenant : "") + ": " + (g.pages || 0) +
        " pages, " + (g.records || 0) + " records read, " + (g.requests || 0) + " requests, " +
        (g.changes || 0) + " changes" + (g.tenants_done ? ", " + g.tenants_done + " tenants done." : ".");
      box.appendChild(q);
    }
  }
  function poll() {
    fetch("/api/v1/runs/" + encodeURIComponent(run), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) { return res.json(); })
      .then(function (data) {
        if (data.error) { box.textContent = data.error.message; return; }
        show(data);
        if (data.finished) {
          if (document.body.getAttribute("data-finished") !== "yes" && !document.getElementById("run-finished")) {
            window.location.reload();
          }
          return;
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
