// The pages' only script besides htmx: a select with class "autosubmit"
// submits its form, and the module drop zone accepts a dropped file.
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target.classList && target.classList.contains("autosubmit") && target.form) {
    target.form.submit();
  }
  if (target.id === "module-file") {
    var chosen = document.getElementById("chosen");
    if (chosen) chosen.textContent = target.files.length ? target.files[0].name : "";
  }
});
document.addEventListener("DOMContentLoaded", function () {
  var zone = document.getElementById("dropzone");
  var input = document.getElementById("module-file");
  if (!zone || !input) return;
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
});
