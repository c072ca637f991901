// ferkit's service worker: keeps the page, ONNX Runtime Web and the models (whose URLs name their
// hash), so that the page and the on-device game open and run with no network after the first visit.
// The API (v1/, healthz, docs) is never cached: photos and server mode need the server.
"use strict";

// The cache is named after the vendored runtime's version (ort/VERSION.txt): a new runtime, a new cache.
const CACHE = "ferkit-web-ort-1.31.1";
const SHELL = ["./", "app.js", "ondevice.js", "style.css", "manifest.webmanifest", "icon-192.png", "icon-512.png",
               "ondevice.json", "ort/ort.wasm.min.js", "ort/ort-wasm-simd-threaded.mjs", "ort/ort-wasm-simd-threaded.wasm"];
const API = /^\/(v1\/|healthz$|docs|redoc|openapi\.json$)/;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL);
    const info = await (await cache.match("ondevice.json")).json();
    await cache.addAll([...info.classifier.urls, info.detector.url]);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

/** Deletes the cached models that ``info`` (ondevice.json) does not name: their URLs name their hash, so every
 * model the server ever sent (another --weights, a new export) would stay cached for good. Done on each new
 * ondevice.json, not on install: a server with other models serves the same sw.js, so no install follows. */
async function pruneModels(cache, info) {
  const scope = self.registration.scope;
  const keep = new Set([...info.classifier.urls, info.detector.url].map((url) => new URL(url, scope).href));
  const models = new URL("models/", scope).href;
  for (const request of await cache.keys()) {
    if (request.url.startsWith(models) && !keep.has(request.url)) await cache.delete(request);
  }
}

/** The network's answer (kept for later), else the cached one. A new ondevice.json prunes the models. */
async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) {
      await cache.put(request, response.clone());
      if (request.url === new URL("ondevice.json", self.registration.scope).href) {
        await pruneModels(cache, await response.clone().json());
      }
    }
    return response;
  } catch (err) {
    const cached = await cache.match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw err;
  }
}

/** The runtime and the models: the cache is named after the runtime's version, and a model's URL after
 * its content, so a cached copy is always right. */
async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const scope = new URL(self.registration.scope);
  if (event.request.method !== "GET" || url.origin !== scope.origin) return;
  const path = "/" + url.pathname.slice(scope.pathname.length);
  if (API.test(path)) return;
  event.respondWith(/^\/(models|ort)\//.test(path) ? cacheFirst(event.request) : networkFirst(event.request));
});
