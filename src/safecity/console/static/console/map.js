/* SafeCity console: the city map (Leaflet). Configuration comes from data- attributes on
 * #city-map, never from inline scripts (the CSP forbids them). Without a tile URL the map
 * draws the district outlines on a plain background, so it works with no internet. */
(function () {
  "use strict";

  var STYLES = {
    district: { color: "#1d4ed8", weight: 2.5, fillColor: "#3b82f6", fillOpacity: 0.08 },
    station: { color: "#0f766e", weight: 1, fillColor: "#14b8a6", fillOpacity: 0.04 },
    other: { color: "#64748b", weight: 1, fillColor: "#94a3b8", fillOpacity: 0.04 }
  };

  function kindOf(props) {
    var kind = props.kind || "district";
    return STYLES[kind] ? kind : "other";
  }

  function nameOf(props, lang) {
    if (lang === "en" && props.name_en) return props.name_en;
    if (lang === "zh" && props.name_zh) return props.name_zh;
    return props.name || props.name_en || props.name_zh || props.code || "";
  }

  function setStatus(el, text, state) {
    var status = document.getElementById("city-map-status");
    el.setAttribute("data-state", state);
    if (!status) return;
    status.textContent = text;
    status.hidden = state === "ready";
  }

  function init() {
    var el = document.getElementById("city-map");
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
        // Larger areas first, so districts sit under stations and stations stay clickable.
        var order = { district: 0, other: 1, station: 2 };
        features.sort(function (a, b) {
          return order[kindOf(a.properties || {})] - order[kindOf(b.properties || {})];
        });
        var layer = L.geoJSON({ type: "FeatureCollection", features: features }, {
          style: function (feature) {
            var props = feature.properties || {};
            var kind = kindOf(props);
            var style = L.extend({}, STYLES[kind]);
            var classes = "org-area org-area--" + kind;
            if (props.synthetic || props.area_synthetic) {
              style.dashArray = "6 4";
              classes += " org-area--synthetic";
            }
            style.className = classes;
            return style;
          },
          onEachFeature: function (feature, featureLayer) {
            var label = document.createElement("span");
            label.textContent = nameOf(feature.properties || {}, lang); // text, never HTML
            featureLayer.bindTooltip(label, { sticky: true });
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
