/* A driver's page of the quick accident flow: "fill from my e-driving licence / vehicle
   e-registration". The QR shown by the e-services app is decoded here in the browser with
   the vendored jsQR (camera or a picked photo), put into the form's paste box and the form
   is posted as is: the server verifies it. Without JavaScript the paste box still works. */
(function () {
  "use strict";

  var box = document.querySelector("[data-credentials]");
  if (!box || typeof window.jsQR !== "function") { return; }
  var M = JSON.parse(box.getAttribute("data-messages") || "{}");
  var MAX_SIDE = 1600; // downscale big photos before decoding
  var MAX_IMAGE = 8388608;
  var video = box.querySelector("[data-scan-video]");
  var canvas = box.querySelector("[data-scan-canvas]");
  var ctx = canvas.getContext("2d", { willReadFrequently: true });
  var message = box.querySelector("[data-scan-message]");
  var stream = null;
  var active = null; // the form whose scan is running
  var hasCamera = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);

  function say(text, isError) {
    message.textContent = text || "";
    message.hidden = !text;
    message.className = "alert " + (isError ? "alert--error" : "alert--info");
  }

  function decodeFrom(source, width, height) {
    var scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    var pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
    var found = window.jsQR(pixels.data, pixels.width, pixels.height, { inversionAttempts: "attemptBoth" });
    return found && found.data ? found.data : null;
  }

  function submitWith(form, text) {
    form.querySelector("textarea[name=text]").value = text;
    say(M.busy, false);
    form.submit();
  }

  function buttons(form, scanning) {
    form.querySelector("[data-scan]").hidden = scanning || !hasCamera;
    form.querySelector("[data-scan-stop]").hidden = !scanning;
  }

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
    if (active) { buttons(active, false); }
    active = null;
  }

  function tick() {
    if (!stream || !active) { return; }
    if (video.readyState >= 2 && video.videoWidth) {
      var text = decodeFrom(video, video.videoWidth, video.videoHeight);
      if (text) { var form = active; stop(); submitWith(form, text); return; }
    }
    window.requestAnimationFrame(tick);
  }

  Array.prototype.forEach.call(box.querySelectorAll("form[data-credential]"), function (form) {
    form.querySelector("[data-needs-js]").hidden = false;
    buttons(form, false);

    form.querySelector("[data-scan]").addEventListener("click", function () {
      stop();
      say("", false);
      active = form;
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (s) {
          stream = s;
          video.srcObject = s;
          video.hidden = false;
          buttons(form, true);
          return video.play();
        })
        .then(function () { window.requestAnimationFrame(tick); })
        .catch(function () { stop(); say(M.no_camera, true); });
    });
    form.querySelector("[data-scan-stop]").addEventListener("click", stop);

    var pick = form.querySelector("[data-pick]");
    pick.addEventListener("change", function () {
      var file = pick.files && pick.files[0];
      pick.value = "";
      if (!file) { return; }
      if ((file.type && file.type.indexOf("image/") !== 0) || file.size > MAX_IMAGE) {
        say(M.not_image, true);
        return;
      }
      createImageBitmap(file).then(function (bitmap) {
        var text = decodeFrom(bitmap, bitmap.width, bitmap.height);
        if (bitmap.close) { bitmap.close(); }
        if (text) { submitWith(form, text); } else { say(M.no_qr, true); }
      }).catch(function () { say(M.not_image, true); });
    });
  });
})();
