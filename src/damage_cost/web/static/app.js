// The claims page: pick or drop photos, send them to /api/estimate, show each photo's priced damages.
"use strict";

const $ = (id) => document.getElementById(id);
const money = (value) => Number(value).toLocaleString("en-US");
let chosenFiles = [];
let lastReport = null;
let limits = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function choose(files) {
  chosenFiles = Array.from(files);
  const list = $("chosen");
  list.replaceChildren(...chosenFiles.map((file) => {
    const item = document.createElement("li");
    item.textContent = `${file.name} (${(file.size / 1024).toFixed(0)} KB)`;
    return item;
  }));
  $("estimate-button").disabled = chosenFiles.length === 0;
  showError("");
  if (limits && chosenFiles.length > limits.max_files) {
    showError(`At most ${limits.max_files} photos per estimate: ${chosenFiles.length} chosen.`);
    $("estimate-button").disabled = true;
  }
}

function setProgress(text, fraction) {
  $("progress").hidden = text === null;
  $("progress-text").textContent = text || "";
  const bar = $("progress-bar");
  if (fraction === null) bar.removeAttribute("value"); else bar.value = fraction;
}

function cell(row, content, className) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function renderCard(record, picture) {
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  card.dataset.image = record.image;
  card.querySelector(".image-name").textContent = record.image;
  card.querySelector(".annotated").src = picture;
  card.querySelector(".annotated").alt = `${record.image}: damages and parts`;
  card.querySelector(".details .inspection").hidden = !record.inspection_needed;
  const body = card.querySelector("tbody");
  for (const damage of record.damages) {
    const row = document.createElement("tr");
    const badge = document.createElement("span");
    badge.className = `severity ${damage.severity}`;
    badge.textContent = damage.severity;
    cell(row, badge);
    cell(row, damage.part);
    cell(row, damage.dice.toFixed(3), "number");
    cell(row, damage.confidence.toFixed(3), "number");
    cell(row, money(damage.price), "number price").dataset.value = damage.price;
    cell(row, damage.fallback || "-");
    body.appendChild(row);
  }
  const total = card.querySelector(".image-total");
  total.textContent = money(record.total);
  total.dataset.value = record.total;
  card.querySelector(".no-damage").hidden = record.damages.length > 0;
  card.querySelector("table").hidden = record.damages.length === 0;
  return card;
}

function showReport(report) {
  lastReport = report;
  const summary = report.summary;
  $("summary-images").textContent = summary.images;
  $("summary-damages").textContent = summary.damages;
  $("grand-total").textContent = money(summary.grand_total);
  $("grand-total").dataset.value = summary.grand_total;
  $("summary-inspection").hidden = summary.images_needing_inspection === 0;
  const skipped = report.images_skipped;
  $("skipped").hidden = skipped.length === 0;
  $("skipped").textContent = skipped.length === 0 ? "" :
    "Not estimated: " + skipped.map((item) => `${item.path} (${item.reason})`).join("; ");
  $("cards").replaceChildren(...report.images.map((record, index) => renderCard(record, report.pictures[index])));
  $("results").hidden = false;
}

function estimate() {
  if (chosenFiles.length === 0) return;
  const form = new FormData();
  for (const file of chosenFiles) form.append("images", file, file.name);
  const request = new XMLHttpRequest();
  const started = Date.now();
  let timer = null;
  const running = () => setProgress(
    `Running the models on ${chosenFiles.length} photo(s)… ${((Date.now() - started) / 1000).toFixed(0)} s`, null);
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) setProgress(`Uploading… ${Math.round(100 * event.loaded / event.total)}%`,
                                            event.loaded / event.total);
  };
  request.upload.onload = () => { running(); timer = setInterval(running, 1000); };
  request.onloadend = () => {
    clearInterval(timer);
    setProgress(null, null);
    $("estimate-button").disabled = false;
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (error) { body = null; }
    if (request.status === 200 && body) {
      showReport(body);
    } else if (body && body.error) {
      const details = (body.images_skipped || []).map((item) => `${item.path}: ${item.reason}`).join("; ");
      showError(details ? `${body.error} (${details})` : body.error);
    } else {
      showError(request.status === 0 ? "The server could not be reached." :
        `The server answered ${request.status} ${request.statusText}.`);
    }
  };
  showError("");
  $("estimate-button").disabled = true;
  setProgress("Uploading…", 0);
  request.open("POST", "/api/estimate?pictures=1");
  request.send(form);
}

function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function reportOnly(report) {
  const copy = Object.assign({}, report);
  delete copy.pictures;
  delete copy.csv;
  return copy;
}

function describeModels(health) {
  const models = health.models;
  const name = (model) => model.checkpoint.split("/").pop();
  const detectors = models.joint ? `joint model ${name(models.parts)}` :
    `parts model ${name(models.parts)}, damage model ${name(models.damage)}`;
  $("models").textContent = `Models: ${detectors}; price model: ${models.price_model.kind}.`;
  limits = health.limits;
  $("limits").textContent = `Up to ${limits.max_files} photos and ${limits.max_request_mb} MB per estimate.`;
}

$("file-input").addEventListener("change", (event) => choose(event.target.files));
$("estimate-button").addEventListener("click", estimate);
$("download-json").addEventListener("click", () =>
  download("report.json", "application/json", JSON.stringify(reportOnly(lastReport), null, 1)));
$("download-csv").addEventListener("click", () => download("report.csv", "text/csv", lastReport.csv));
const zone = $("drop-zone");
["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
  event.preventDefault();
  zone.classList.add("dragging");
}));
["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  choose(event.dataTransfer.files);
});
fetch("/health").then((response) => response.json()).then(describeModels)
  .catch(() => showError("The server could not be reached."));
