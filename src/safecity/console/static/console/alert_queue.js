/* SafeCity console: the live alert queue and its map (no inline script: CSP).
 * The table rows are rendered by the server; this script places the rows and map points
 * that arrive over Server-Sent Events, removes alerts that left the queue, and draws the
 * open alerts (GeoJSON) as circle markers coloured by severity. A marker opens the alert. */
(function () {
  "use strict";

  var COLOURS = { critical: "#b71c1c", high: "#e65100", medium: "#f9a825", low: "#607d8b" };
  var RANK = { critical: 0, high: 1, medium: 2, low: 3 };

  var el = document.querySelector("[data-alert-queue]");
  var rows = document.getElementById("aq-rows");
  var empty = document.getElementById("aq-empty");
  var status = document.getElementById("aq-status");
  if (!el || !rows) return;
  var limit = parseInt(el.getAttribute("data-limit") || "500", 10);
  var markers = {};
  var map = null;
  var layer = null;

  function setStatus(state) {
    if (!status) return;
    status.setAttribute("data-state", state);
    status.textContent = status.getAttribute("data-msg-" + state) || state;
  }

  function countMarkers() {
    var n = Object.keys(markers).length;
    el.setAttribute("data-markers", String(n));
    return n;
  }

  function placeMarker(feature) {
    if (!layer || !feature || !feature.geometry) return;
    var props = feature.properties || {};
    var id = props.id;
    if (markers[id]) layer.removeLayer(markers[id]);
    if (!markers[id] && countMarkers() >= limit) return; // capped: the list still has it
    var c = feature.geometry.coordinates;
    var colour = COLOURS[props.severity] || "#334155";
    var marker = L.circleMarker([c[1], c[0]], {
      radius: props.severity === "critical" ? 9 : 7,
      color: colour,
      weight: 2,
      fillColor: colour,
      fillOpacity: 0.75,
      className: "alert-marker alert-marker--" + props.severity
    });
    var label = document.createElement("span");
    label.textContent = props.category + " · " + props.count + "×"; // text, never HTML
    marker.bindTooltip(label);
    marker.on("click", function () { window.location.assign(props.url); });
    marker.addTo(layer);
    markers[id] = marker;
    countMarkers();
  }

  function dropMarker(id) {
    if (markers[id] && layer) layer.removeLayer(markers[id]);
    delete markers[id];
    countMarkers();
  }

  function rowRank(row) {
    return RANK[row.getAttribute("data-severity")];
  }

  function placeRow(data) {
    var existing = document.getElementById("row-" + data.id);
    if (!data.open) {
      if (existing) existing.remove();
    } else {
      var holder = document.createElement("tbody");
      holder.innerHTML = data.html;
      var row = holder.querySelector("tr");
      if (!row) return;
      if (existing) {
        existing.replaceWith(row);
      } else {
        // A new alert is the youngest of its severity: after the others of that severity.
        var rank = RANK[data.severity];
        var before = null;
        for (var i = 0; i < rows.children.length; i++) {
          if (rowRank(rows.children[i]) > rank) { before = rows.children[i]; break; }
        }
        row.classList.add("is-new");
        rows.insertBefore(row, before);
      }
    }
    if (empty) empty.hidden = rows.children.length > 0;
  }

  function initMap() {
    if (!window.L) return;
    map = L.map(el, { zoomSnap: 0.25 });
    map.attributionControl.setPrefix(false);
    map.setView([31.23, 121.47], 10);
    var tileUrl = el.getAttribute("data-tile-url");
    if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(map);
    } else {
      el.classList.add("map--plain");
    }
    var areasUrl = el.getAttribute("data-areas-url");
    if (areasUrl) {
      fetch(areasUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data || !data.features || !data.features.length) return;
          var areas = L.geoJSON(data, {
            interactive: false,
            style: { color: "#64748b", weight: 1, fillOpacity: 0.03, className: "aq-area" }
          }).addTo(map);
          areas.bringToBack();
        })
        .catch(function () { /* outlines are decoration */ });
    }
    layer = L.featureGroup().addTo(map);
    fetch(el.getAttribute("data-geojson-url"), {
      credentials: "same-origin",
      headers: { Accept: "application/geo+json, application/json" }
    })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        (data.features || []).forEach(placeMarker);
        if (countMarkers() > 0) map.fitBounds(layer.getBounds(), { padding: [24, 24], maxZoom: 13 });
        el.setAttribute("data-state", "ready");
      })
      .catch(function () { el.setAttribute("data-state", "error"); });
  }

  function initStream() {
    if (typeof window.EventSource !== "function") return;
    var source = new EventSource(el.getAttribute("data-stream-url"));
    source.addEventListener("open", function () { setStatus("live"); });
    source.addEventListener("error", function () { setStatus("offline"); });
    source.addEventListener("alert", function (event) {
      try {
        var data = JSON.parse(event.data);
        placeRow(data);
        if (data.open && data.feature) placeMarker(data.feature);
        else dropMarker(data.id);
      } catch (err) {
        /* a malformed event must not stop the queue */
      }
    });
  }

  function init() {
    initMap();
    initStream();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
