// Times in the viewer's own zone: the server writes each as <time datetime="RFC 3339">, with
// its UTC rendering as the text (what shows without script); here each becomes the same instant
// in the browser's zone, to the second, naming the zone and its offset. The UTC text stays as
// the element's title.
(function () {
  "use strict";
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var fmt = new Intl.DateTimeFormat("en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  function two(n) { return (n < 10 ? "0" : "") + n; }
  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var el = times[i];
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d.getTime())) { continue; }
    var p = {};
    fmt.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    // The offset of this instant (summer time differs from winter's).
    var off = -d.getTimezoneOffset();
    var sign = off < 0 ? "-" : "+";
    off = Math.abs(off);
    var offset = "UTC" + sign + two(Math.floor(off / 60)) + ":" + two(off % 60);
    el.title = el.textContent;
    el.textContent = p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second +
      " " + (zone === "UTC" || zone === "Etc/UTC" ? "UTC" : zone ? zone + " (" + offset + ")" : offset);
    el.setAttribute("data-zone", zone);
  }
})();

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
