/* SafeCity console: hotspots coloured by forecast load (Leaflet). Configuration comes from
 * data- attributes on #crowd-map, never from inline scripts (the CSP forbids them). The
 * colour is decided on the server (properties.colour: green < 0.8 <= amber < 1 <= red, grey
 * without a current forecast); the same figures are in the table beside the map. */
(function () {
  "use strict";

  var COLOURS = {
    green: "#16a34a",
    amber: "#f59e0b",
    red: "#dc2626",
    grey: "#94a3b8"
  };

  function nameOf(props, lang) {
    if (lang === "en" && props.name_en) return props.name_en;
    if (lang === "zh" && props.name_zh) return props.name_zh;
    return props.name_en || props.name_zh || props.code || "";
  }

  function setStatus(el, text, state) {
    var status = document.getElementById("crowd-map-status");
    el.setAttribute("data-state", state);
    if (!status) return;
    status.textContent = text;
    status.hidden = state === "ready";
  }

  function tooltip(el, props, lang) {
    var box = document.createElement("span");
    var title = document.createElement("strong");
    title.textContent = nameOf(props, lang); // text, never HTML
    box.appendChild(title);
    var line = document.createElement("span");
    if (props.ratio === null || props.ratio === undefined) {
      line.textContent = " · " + el.getAttribute("data-msg-none");
    } else {
      line.textContent =
        " · " + el.getAttribute("data-msg-load") + " " + Number(props.ratio).toFixed(2) +
        " · " + el.getAttribute("data-msg-upper") + " " + Math.round(props.upper);
    }
    box.appendChild(line);
    return box;
  }

  function init() {
    var el = document.getElementById("crowd-map");
    if (!el || !window.L) return;
    var lang = el.getAttribute("data-lang") || "zh";
    var map = L.map(el, { zoomSnap: 0.25, worldCopyJump: false });
    map.attributionControl.setPrefix(false);
    map.setView([0, 0], 2);
    var tileUrl = el.getAttribute("data-tile-url");
    if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(map);
    } else {
      el.classList.add("map--plain");
    }
    setStatus(el, el.getAttribute("data-msg-loading"), "loading");
    fetch(el.getAttribute("data-geojson-url"), {
      credentials: "same-origin",
      headers: { Accept: "application/geo+json, application/json" }
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        var features = (data && data.features) || [];
        var layer = L.geoJSON({ type: "FeatureCollection", features: features }, {
          style: function (feature) {
            var colour = (feature.properties || {}).colour;
            var fill = COLOURS[colour] || COLOURS.grey;
            return {
              color: fill,
              weight: 2,
              fillColor: fill,
              fillOpacity: 0.45,
              className: "crowd-load crowd-load--" + (COLOURS[colour] ? colour : "grey")
            };
          },
          onEachFeature: function (feature, featureLayer) {
            featureLayer.bindTooltip(tooltip(el, feature.properties || {}, lang), { sticky: true });
          }
        }).addTo(map);
        el.setAttribute("data-areas", String(features.length));
        if (features.length === 0) {
          setStatus(el, el.getAttribute("data-msg-empty"), "empty");
          return;
        }
        map.fitBounds(layer.getBounds(), { padding: [16, 16] });
        setStatus(el, "", "ready");
      })
      .catch(function () {
        setStatus(el, el.getAttribute("data-msg-error"), "error");
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
