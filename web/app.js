// The videojobs page: upload a file straight to storage, submit a job, follow it live, play and list the results.
// Plain browser JavaScript, no build step; hls.js (window.Hls) comes from npm via `make web`.

const $ = (id) => document.getElementById(id);
const PART_CONCURRENCY = 4;
const PART_RETRIES = 3;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const KNOWN_OUTPUTS = ["mp4", "hls", "thumbnails", "audio"];

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

class NoEventStream extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const baseUrl = () => $("api-url").value.replace(/\/+$/, "");
const authHeader = () => ({ Authorization: `Bearer ${$("api-key").value.trim()}` });

function size(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (bytes >= 1000 && unit < units.length - 1) { bytes /= 1000; unit += 1; }
  return unit === 0 ? `${bytes} B` : `${bytes.toFixed(1)} ${units[unit]}`;
}

async function errorOf(response) {
  try {
    const { error } = await response.json();
    return new ApiError(response.status, error.code, error.message);
  } catch {
    return new ApiError(response.status, "http_error", response.statusText);
  }
}

async function api(method, path, body, headers = {}) {
  const response = await fetch(baseUrl() + path, {
    method,
    headers: { ...authHeader(), ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw await errorOf(response);
  return { body: response.status === 204 ? null : await response.json(), headers: response.headers };
}

// --- upload -----------------------------------------------------------------------------------------------

// XMLHttpRequest, because fetch() reports no upload progress.
function send(method, url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded, event.total);
    request.onload = () => {
      if (request.status < 300) return resolve(request);
      const error = new Error(`storage answered ${request.status}: ${request.responseText.slice(0, 200)}`);
      error.status = request.status;
      error.body = request.responseText;
      return reject(error);
    };
    request.onerror = () => reject(new Error("storage could not be reached"));
    request.send(body);
  });
}

async function upload(file, onProgress) {
  const contentType = /^(video|audio)\//.test(file.type) ? file.type : "video/mp4";
  const { body: answer } = await api("POST", "/uploads",
    { filename: file.name.slice(-255), content_type: contentType, size_bytes: file.size });
  if (answer.method === "MULTIPART") {
    await uploadParts(file, answer, onProgress);
  } else {
    const form = new FormData();
    for (const [name, value] of Object.entries(answer.fields)) form.append(name, value);
    form.append("file", file); // S3 reads the fields first: the file goes last
    await send("POST", answer.url, form, (loaded, total) => onProgress(Math.round(file.size * loaded / total)));
  }
  onProgress(file.size);
  return answer.upload_id;
}

// S3's answer to a presigned URL past its expiry (403) or past its signing session's (400 ExpiredToken).
const urlExpired = (error) => error.status === 403 || (error.status === 400 && /<Code>ExpiredToken</.test(error.body));

async function uploadParts(file, answer, onProgress) {
  const sent = new Map();
  const report = () => onProgress([...sent.values()].reduce((a, b) => a + b, 0));
  const queue = [...answer.parts];
  const done = [];

  async function sendPart(part) {
    const start = (part.part_number - 1) * answer.part_size;
    const blob = file.slice(start, Math.min(start + answer.part_size, file.size));
    let url = part.url;
    let refreshed = false;
    for (let attempt = 0; ;) {
      try {
        const request = await send("PUT", url, blob, (loaded) => { sent.set(part.part_number, loaded); report(); });
        return { part_number: part.part_number, etag: request.getResponseHeader("ETag") };
      } catch (error) {
        sent.set(part.part_number, 0);
        if (urlExpired(error) && !refreshed) {
          // A presigned URL dies with the session that signed it: sign this part again; the others stay sent.
          const { body: fresh } = await api("POST", `/uploads/${answer.upload_id}/parts`,
            { part_numbers: [part.part_number] });
          url = fresh.parts[0].url;
          refreshed = true;
          continue;
        }
        if (attempt >= PART_RETRIES) throw error;
        await sleep(500 * 2 ** attempt);
        attempt += 1;
        refreshed = false;
      }
    }
  }

  async function worker() {
    while (queue.length) done.push(await sendPart(queue.shift()));
  }

  try {
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, queue.length) }, worker));
  } catch (error) {
    api("DELETE", `/uploads/${answer.upload_id}`).catch(() => {}); // storage drops the parts
    throw error;
  }
  done.sort((a, b) => a.part_number - b.part_number);
  await api("POST", `/uploads/${answer.upload_id}/complete`, { parts: done });
}

// --- following a job ------------------------------------------------------------------------------------

// Server-Sent Events read with fetch(): EventSource cannot send the Authorization header.
// onJob(job, event) for each: the event (its type, output_index) is null where the payload is a bare job.
// One streamed response carries every event until the job's end; a response that ends or breaks off before
// (the gateway's 15-minute cap, or a long poll where the API buffers) is resumed with Last-Event-ID.
async function followEvents(jobId, lastVersion, onJob) {
  let lastId = String(lastVersion);
  let retry = 1000;
  let failures = 0;
  for (;;) {
    const response = await fetch(`${baseUrl()}/jobs/${jobId}/events`,
      { headers: { ...authHeader(), Accept: "text/event-stream", "Last-Event-ID": lastId } });
    if (response.status === 204) return null; // the server says the end was seen already
    const isStream = (response.headers.get("Content-Type") || "").startsWith("text/event-stream");
    if (response.status === 404 || response.status === 405 || (response.ok && !isStream)) throw new NoEventStream();
    if (!response.ok) throw await errorOf(response);

    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let data = [];
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) { // the stream broke off (a network hiccup, a gateway limit): resume after the last id
        if (++failures > 3) throw error;
        break;
      }
      const { value, done } = chunk;
      if (done) break;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) {
            const payload = JSON.parse(data.join("\n"));
            const event = payload.data && payload.type ? payload : null;
            const job = event ? event.data : payload;
            onJob(job, event);
            if (TERMINAL.has(job.status)) return job;
          }
          data = [];
        } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        else if (line.startsWith("id:")) lastId = line.slice(3).trim();
        else if (line.startsWith("retry:")) retry = Number(line.slice(6)) || retry;
      }
    }
    await sleep(retry); // the response ended before the job did: resume after the last event seen
  }
}

async function follow(jobId, onJob) {
  let last = null;
  const report = (job, event = null) => {
    if (!last || job.version > last.version) { last = job; onJob(job, event); }
  };
  let { body: job, headers } = await api("GET", `/jobs/${jobId}`);
  report(job);
  if (TERMINAL.has(job.status)) return job;
  try {
    await followEvents(jobId, job.version, report);
    headers = new Headers({ "Retry-After": "0" }); // the stream has ended: look at the job at once
  } catch (error) {
    if (!(error instanceof NoEventStream)) console.warn("event stream failed, polling instead", error);
  }
  // Output URLs are presigned at every read, so the finished job is read once more rather than taken from an event.
  for (;;) {
    await sleep(1000 * Number(headers.get("Retry-After") ?? 2)); // as long as the API asks
    ({ body: job, headers } = await api("GET", `/jobs/${jobId}`));
    report(job);
    if (TERMINAL.has(job.status)) return job;
  }
}

// --- the page ---------------------------------------------------------------------------------------------

function requestedOutputs(form) {
  const outputs = [];
  const on = (name) => form.elements[name] && form.elements[name].checked && !form.elements[name].closest("[hidden]");
  if (on("mp4")) outputs.push({ type: "mp4", height: Number(form.elements["mp4-height"].value) });
  if (on("hls")) {
    outputs.push({ type: "hls", heights: form.elements["hls-heights"].value.split(",").map((h) => Number(h.trim())) });
  }
  if (on("thumbnails")) outputs.push({ type: "thumbnails", count: Number(form.elements["thumbnails-count"].value) });
  if (on("audio")) outputs.push({ type: "audio", format: form.elements["audio-format"].value });
  return outputs;
}

function showJob(job) {
  $("job-progress").value = job.progress;
  const parts = [`${job.progress}%`, job.status];
  if (job.stage && !TERMINAL.has(job.status)) parts.push(job.stage);
  if (job.eta_seconds != null && !TERMINAL.has(job.status)) parts.push(`about ${Math.round(job.eta_seconds)} s left`);
  $("job-text").value = parts.join(" · ");
  $("job-status").textContent = `${job.id}: ${job.status}`;
  $("job-status").dataset.status = job.status;
}

function caption(output) {
  const name = output.type === "hls" ? `HLS ${(output.heights || []).join("/")}p` : `MP4 ${output.height}p`;
  return output.status === "ready" ? name : `${name}, playing while the job runs`;
}

// MP4 plays natively; HLS through hls.js wherever Media Source Extensions exist (as its authors advise, even
// where the browser also plays HLS itself), else natively (iOS Safari).
function player(output, index, url) {
  const video = Object.assign(document.createElement("video"), { controls: true, muted: true, playsInline: true });
  video.dataset.type = output.type;
  if (output.type === "hls" && window.Hls?.isSupported()) {
    const hls = new window.Hls();
    hls.loadSource(url);
    hls.attachMedia(video);
    video.dataset.player = "hls.js";
  } else {
    video.src = url;
    video.dataset.player = "native";
  }
  video.play().catch(() => {}); // muted, so browsers allow it; the controls remain either way
  const figure = document.createElement("figure");
  figure.dataset.index = index;
  figure.append(video, document.createElement("figcaption"));
  return figure;
}

// A player per playable output, in the job's order. One started early (an HLS output's playable_url, before it
// is ready) plays on untouched: its link serves the growing EVENT playlists, then the final VOD ones.
function showPlayers(job) {
  const players = $("players");
  job.outputs.forEach((output, index) => {
    const url = output.url || output.playable_url;
    let figure = players.querySelector(`figure[data-index="${index}"]`);
    if (!figure && url && (output.type === "mp4" || output.type === "hls")) {
      figure = player(output, index, url);
      const next = [...players.children].find((other) => Number(other.dataset.index) > index);
      players.insertBefore(figure, next || null);
    }
    if (figure) figure.querySelector("figcaption").textContent = caption(output);
  });
}

function showResult(job) {
  $("result").hidden = false;
  $("thumbnails").replaceChildren();
  showPlayers(job);
  const list = $("downloads");
  list.replaceChildren();
  for (const output of job.outputs) {
    for (const url of [output.url, ...(output.urls || [])].filter(Boolean)) {
      const item = document.createElement("li");
      const link = Object.assign(document.createElement("a"), { href: url, download: "" });
      const name = decodeURIComponent(new URL(url).pathname.split("/").pop());
      link.textContent = `${output.type}: ${name}`;
      item.append(link);
      if (output.size_bytes && url === output.url) item.append(` (${size(output.size_bytes)})`);
      list.append(item);
      if (output.type === "thumbnails") $("thumbnails").append(Object.assign(document.createElement("img"), { src: url }));
    }
  }
}

function showError(error) {
  $("error").hidden = false;
  $("error").textContent = error.message;
}

async function run(event) {
  event.preventDefault();
  const form = event.target;
  const file = $("file").files[0];
  const outputs = requestedOutputs(form);
  $("error").hidden = true;
  $("result").hidden = true;
  $("players").replaceChildren();
  $("thumbnails").replaceChildren();
  if (!outputs.length) return showError(new Error("choose at least one output"));
  localStorage.setItem("videojobs.url", $("api-url").value);
  localStorage.setItem("videojobs.key", $("api-key").value);
  $("submit").disabled = true;
  $("progress").hidden = false;
  $("upload-progress").max = file.size;
  $("upload-progress").value = 0;
  $("job-progress").value = 0;
  $("job-text").value = "";
  $("job-status").textContent = "";
  try {
    const uploadId = await upload(file, (sent) => {
      $("upload-progress").value = sent;
      $("upload-text").value = `${size(sent)} / ${size(file.size)}`;
    });
    const { body: job } = await api("POST", "/jobs", { input: { upload_id: uploadId }, outputs },
      { "Idempotency-Key": `web-${uploadId}` });
    // Each output is shown as soon as it is ready (job.output.ready), and an HLS output played as soon as it is
    // playable (job.playable, with split and stitch), before the job completes. Links are signed at each read
    // of the job, not carried by events: the job is read again (a polled update has them already).
    const shown = new Set();
    const playing = new Set();
    const onJob = (update, event) => {
      showJob(update);
      if (TERMINAL.has(update.status)) return;
      const ready = update.outputs.map((output, index) => output.status === "ready" && !shown.has(index));
      const playable = update.outputs.map((output, index) => !playing.has(index)
        && Boolean(output.playable_url || (event?.type === "job.playable" && event.output_index === index)));
      if (!ready.includes(true) && !playable.includes(true)) return;
      ready.forEach((fresh, index) => fresh && shown.add(index));
      playable.forEach((fresh, index) => fresh && playing.add(index));
      (event ? api("GET", `/jobs/${update.id}`) : Promise.resolve({ body: update }))
        .then(({ body }) => { if (!TERMINAL.has(body.status)) showResult(body); })
        .catch(() => {}); // shown at completion anyway
    };
    const done = await follow(job.id, onJob);
    if (done.status === "completed") showResult(done);
    else {
      $("result").hidden = true; // what was shown early is gone with the job's outputs
      $("players").replaceChildren();
      if (done.error) showError(new Error(`job ${done.status}: ${done.error.code}: ${done.error.message}`));
    }
  } catch (error) {
    showError(error);
  } finally {
    $("submit").disabled = false;
  }
}

// Offer only the output types this API accepts, as its OpenAPI document says (served next to this page).
async function offerOutputs() {
  try {
    const document_ = await (await fetch("openapi.json")).json();
    const items = document_.components.schemas.CreateJobRequest.properties.outputs.items;
    const accepted = new Set(Object.keys(items.discriminator?.mapping || {}));
    if (!accepted.size) return;
    for (const type of KNOWN_OUTPUTS) {
      document.querySelector(`[data-type="${type}"]`).hidden = !accepted.has(type);
    }
  } catch {
    // no document: offer everything and let the API say no
  }
}

async function init() {
  let config = {};
  try {
    const response = await fetch("config.json", { cache: "no-store" }); // the local stack serves its dev key here
    if (response.ok) config = await response.json();
  } catch {
    // a static deployment may have none
  }
  // The local stack's key is new at every start: it wins over what this browser remembers.
  $("api-url").value = config.api_url || localStorage.getItem("videojobs.url") || location.origin;
  $("api-key").value = config.api_key || localStorage.getItem("videojobs.key") || "";
  await offerOutputs();
  $("job-form").addEventListener("submit", run);
  document.body.dataset.ready = "true";
}

init();
