/* The public verifier page (/verify): scan a QR with the camera or pick an image, decode
   it here in the browser with the vendored jsQR, POST the text to the verify API and show
   the verdict. Without JavaScript the page still works through its text-box form. */
(function () {
  "use strict";

  var main = document.querySelector("main.verify");
  if (!main || typeof window.jsQR !== "function") { return; }
  var M = JSON.parse(main.getAttribute("data-messages") || "{}");
  var api = main.getAttribute("data-verify-api");
  var maxImage = parseInt(main.getAttribute("data-max-image"), 10) || 8388608;
  var MAX_SIDE = 1600; // downscale big photos before decoding: fast and enough for a QR
  // A picked photo: a small, fast pass first, then full size, inverted too (a QR shown
  // light-on-dark). jsQR's "onlyInvert" throws on some images: "attemptBoth" instead.
  var PHOTO_PASSES = [[800, "dontInvert"], [MAX_SIDE, "attemptBoth"]];

  var scanBox = main.querySelector("[data-needs-js]");
  var startBtn = document.getElementById("scan-start");
  var stopBtn = document.getElementById("scan-stop");
  var fileInput = document.getElementById("qr-file");
  var message = document.getElementById("scan-message");
  var video = document.getElementById("scan-video");
  var canvas = document.getElementById("scan-canvas");
  var ctx = canvas.getContext("2d", { willReadFrequently: true });
  var verdictBox = document.getElementById("verdict");
  var form = document.getElementById("verify-form");
  var textBox = document.getElementById("verify-text");
  var profileBox = document.getElementById("verify-profile");
  var stream = null;
  var busy = false;

  scanBox.hidden = false;
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) { startBtn.hidden = true; }

  function say(text, isError) {
    message.textContent = text || "";
    message.hidden = !text;
    message.className = "alert " + (isError ? "alert--error" : "alert--info");
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function labelled(label, value, cls) {
    var p = el("p", cls);
    p.appendChild(el("span", "verdict__label", label));
    p.appendChild(document.createTextNode(" " + value));
    return p;
  }

  function claimText(value) {
    if (value === true) { return "\u2713"; }
    if (value === false) { return "\u2717"; }
    if (value && typeof value === "object") {
      return Object.keys(value).map(function (k) { return k + ": " + value[k]; }).join("; ");
    }
    return String(value);
  }

  function show(v) {
    verdictBox.textContent = "";
    var box = el("div", "verdict verdict--" + String(v.status).toLowerCase());
    box.setAttribute("data-status", v.status);
    box.setAttribute("data-code", v.code);
    box.appendChild(el("p", "verdict__word", M[v.status] || v.status));
    if (v.vct) { box.appendChild(labelled(M.type, v.vct.split("/").pop(), "verdict__type")); }
    box.appendChild(labelled(M.reason, v.reason, "verdict__reason"));
    if (v.as_of) { box.appendChild(labelled(M.as_of, v.as_of, "verdict__asof")); }
    if (v.expires_at) { box.appendChild(labelled(M.expires, v.expires_at)); }
    var keys = Object.keys(v.claims || {});
    if (keys.length) {
      var dl = el("dl", "verdict__claims");
      keys.forEach(function (k) {
        dl.appendChild(el("dt", null, M["claim." + k] || k));
        dl.appendChild(el("dd", null, claimText(v.claims[k])));
      });
      box.appendChild(dl);
    }
    verdictBox.appendChild(box);
    verdictBox.scrollIntoView({ block: "nearest" });
  }

  function verify(text) {
    if (busy) { return; }
    busy = true;
    say(M.busy, false);
    textBox.value = text;
    var body = { text: text };
    if (profileBox.value) { body.profile = profileBox.value; }
    fetch(api, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (!res.ok || !res.data.status) { throw new Error((res.data && res.data.detail) || "error"); }
      say("", false);
      show(res.data);
    }).catch(function (err) {
      say(M.failed + (err && err.message ? " (" + err.message + ")" : ""), true);
    }).then(function () { busy = false; });
  }

  function decodeFrom(source, width, height, maxSide, inversion) {
    var scale = Math.min(1, (maxSide || MAX_SIDE) / Math.max(width, height));
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    var pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
    var found = window.jsQR(pixels.data, pixels.width, pixels.height,
      { inversionAttempts: inversion || "attemptBoth" });
    return found && found.data ? found.data : null;
  }

  function decodePhoto(source, width, height) {
    for (var i = 0; i < PHOTO_PASSES.length; i += 1) {
      var pass = PHOTO_PASSES[i];
      var previous = i > 0 ? PHOTO_PASSES[i - 1] : null;
      // the same image again: it already fitted the previous pass's size
      if (previous && previous[1] === pass[1] && Math.max(width, height) <= previous[0]) {
        continue;
      }
      var text = decodeFrom(source, width, height, pass[0], pass[1]);
      if (text) { return text; }
    }
    return null;
  }

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
    stopBtn.hidden = true;
    startBtn.hidden = false;
  }

  function tick() {
    if (!stream) { return; }
    if (video.readyState >= 2 && video.videoWidth) {
      var text = decodeFrom(video, video.videoWidth, video.videoHeight);
      if (text) { stop(); verify(text); return; }
    }
    window.requestAnimationFrame(tick);
  }

  startBtn.addEventListener("click", function () {
    say("", false);
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        stopBtn.hidden = false;
        startBtn.hidden = true;
        return video.play();
      })
      .then(function () { window.requestAnimationFrame(tick); })
      .catch(function () { stop(); say(M.no_camera, true); });
  });
  stopBtn.addEventListener("click", stop);

  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) { return; }
    if (file.type && file.type.indexOf("image/") !== 0) { say(M.not_image, true); return; }
    if (file.size > maxImage) { say(M.too_big, true); return; }
    createImageBitmap(file).then(function (bitmap) {
      var text = decodePhoto(bitmap, bitmap.width, bitmap.height);
      if (bitmap.close) { bitmap.close(); }
      if (text) { verify(text); } else { say(M.no_qr, true); }
    }).catch(function () { say(M.not_image, true); });
  });

  form.addEventListener("submit", function (event) {
    var text = textBox.value.trim();
    if (!text) { return; }
    event.preventDefault();
    verify(text);
  });
})();
