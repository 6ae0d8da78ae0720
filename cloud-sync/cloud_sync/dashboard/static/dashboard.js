// The edgetwin dashboard: one Server-Sent Events stream (/api/stream) keeps the nodes, devices and
// events current; "Set" posts a desired value (/api/devices/NS/NAME/properties/PROP/desired), which
// cloud-sync checks against the DeviceModel and patches into the Device. Plain DOM, text only (no
// innerHTML): every name and message on the page comes from the cluster. Rows are updated in place,
// so a value being typed survives the updates around it.
"use strict";

(() => {
  const EVENT_LIMIT = 100;
  const RETRY_MS = 2000;
  const devices = new Map(); // id -> view
  const nodes = new Map(); // name -> view
  const events = new Map(); // id -> view
  const cards = new Map(); // device id -> its card's parts
  const nodeRows = new Map(); // node name -> its row's parts
  let source = null;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }

  // -- time ------------------------------------------------------------------------------------------

  function ago(ms, never) {
    if (ms === null || ms === undefined) return never;
    const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(ms).toLocaleString();
  }

  function setTime(node, ms, never = "") {
    node.dataset.time = ms === null || ms === undefined ? "" : String(ms);
    node.dataset.never = never;
    node.textContent = ago(ms, never);
    node.title = ms ? new Date(ms).toISOString() : "";
  }

  function tick() {
    for (const node of document.querySelectorAll("[data-time]")) {
      node.textContent = ago(node.dataset.time ? Number(node.dataset.time) : null, node.dataset.never);
    }
  }

  // keeps ``parent``'s children in the order of ``wanted`` without moving those already in place
  // (moving an element takes the focus from an input inside it)
  function order(parent, wanted) {
    wanted.forEach((child, index) => {
      if (parent.children[index] !== child) parent.insertBefore(child, parent.children[index] || null);
    });
  }

  // -- devices -----------------------------------------------------------------------------------------

  function describeType(prop) {
    if (!prop.type) return "not in the model";
    const bounds =
      prop.minimum !== null || prop.maximum !== null ? ` ${prop.minimum ?? "…"}…${prop.maximum ?? "…"}` : "";
    return `${prop.type}${bounds}${prop.unit ? ` ${prop.unit}` : ""}${prop.writable ? "" : " · read only"}`;
  }

  async function setDesired(device, property, row) {
    const value = row.input.value;
    row.button.disabled = true;
    row.result.className = "result";
    row.result.textContent = "sending…";
    const path = [device.namespace, device.name, property].map(encodeURIComponent);
    try {
      const response = await fetch(`/api/devices/${path[0]}/${path[1]}/properties/${path[2]}/desired`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ value }),
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        row.result.classList.add("ok");
        row.result.textContent = `set to ${value}`;
        row.input.value = "";
      } else {
        row.result.classList.add("refused");
        row.result.textContent = body.error || `refused (HTTP ${response.status})`;
      }
    } catch (error) {
      row.result.classList.add("refused");
      row.result.textContent = "cloud-sync does not answer; try again once it is back";
    } finally {
      row.button.disabled = false;
    }
  }

  function propertyRow(device, prop) {
    const row = {
      type: el("td", { class: "type" }),
      desired: el("td", { class: "desired" }),
      reported: el("td", { class: "reported" }),
      reportedAt: el("td", { class: "reported-at" }),
      input: el("input", { name: "value", autocomplete: "off", spellcheck: "false", "aria-label": `desired ${prop.name}` }),
      button: el("button", { type: "submit", text: "Set" }),
      result: el("span", { class: "result", role: "status" }),
      readOnly: el("span", { class: "read-only", text: "read only" }),
    };
    row.form = el("form", { class: "set-desired" }, row.input, row.button);
    row.form.addEventListener("submit", (event) => {
      event.preventDefault();
      setDesired(device, prop.name, row);
    });
    row.tr = el(
      "tr",
      { dataset: { property: prop.name } },
      el("th", { scope: "row", class: "name", text: prop.name }),
      row.type,
      row.desired,
      row.reported,
      row.reportedAt,
      el("td", { class: "set" }, row.form, row.readOnly, row.result),
    );
    return row;
  }

  function updateRow(row, prop) {
    row.type.textContent = describeType(prop);
    row.desired.textContent = prop.desired ?? "";
    const pending = prop.inSync === false;
    row.desired.classList.toggle("pending", pending);
    row.desired.title = pending ? "the device has not reported this value yet" : "";
    row.reported.textContent = prop.reported ?? "";
    setTime(row.reportedAt, prop.reportedAt);
    row.form.hidden = !prop.writable;
    row.readOnly.hidden = prop.writable || !prop.type; // a property the model lacks takes no value either
  }

  function deviceCard(view) {
    const card = {
      namespace: el("span", { class: "namespace" }),
      state: el("span", { class: "state" }),
      meta: el("span", { class: "meta" }),
      problem: el("p", { class: "problem", role: "alert" }),
      tbody: el("tbody"),
      rows: new Map(),
    };
    const head = ["Property", "Type", "Desired", "Reported", "Reported at", "Set desired value"];
    card.element = el(
      "article",
      { class: "device", dataset: { device: view.id } },
      el("header", {}, el("h3", { text: view.name }), card.namespace, card.state, card.meta),
      card.problem,
      el("table", { class: "properties" }, el("thead", {}, el("tr", {}, ...head.map((t) => el("th", { text: t })))), card.tbody),
    );
    return card;
  }

  function updateCard(card, view) {
    card.namespace.textContent = view.namespace;
    card.state.textContent = view.state;
    card.state.className = `state state-${view.state}`;
    const protocol = view.protocol ? ` · ${view.protocol}` : "";
    card.meta.textContent = `node ${view.node || "none"} · model ${view.model || "none"}${protocol}`;
    card.problem.hidden = !view.problem;
    card.problem.textContent = view.problem ? `${view.problem.reason}: ${view.problem.message}` : "";
    const names = new Set(view.properties.map((p) => p.name));
    for (const [name, row] of card.rows) {
      if (!names.has(name)) {
        row.tr.remove();
        card.rows.delete(name);
      }
    }
    for (const prop of view.properties) {
      if (!card.rows.has(prop.name)) card.rows.set(prop.name, propertyRow(view, prop));
      updateRow(card.rows.get(prop.name), prop);
    }
    order(card.tbody, view.properties.map((p) => card.rows.get(p.name).tr));
  }

  function renderDevices(changed) {
    const container = document.getElementById("devices");
    for (const [id, card] of cards) {
      if (!devices.has(id)) {
        card.element.remove();
        cards.delete(id);
      }
    }
    for (const id of changed) {
      const view = devices.get(id);
      if (!view) continue;
      if (!cards.has(id)) cards.set(id, deviceCard(view));
      updateCard(cards.get(id), view);
    }
    const ids = [...devices.keys()].sort();
    order(container, ids.map((id) => cards.get(id).element));
    document.getElementById("devices-empty").hidden = devices.size > 0;
  }

  // -- nodes and events ------------------------------------------------------------------------------------

  function nodeRow(name) {
    const row = {
      state: el("span", { class: "state" }),
      heartbeat: el("td", { class: "heartbeat" }),
      devices: el("td", { class: "devices" }),
      address: el("td", { class: "address" }),
      system: el("td", { class: "system" }),
    };
    row.tr = el(
      "tr",
      { dataset: { node: name } },
      el("th", { scope: "row", text: name }),
      el("td", {}, row.state),
      row.heartbeat,
      row.devices,
      row.address,
      row.system,
    );
    return row;
  }

  function renderNodes() {
    const tbody = document.querySelector("#nodes tbody");
    for (const [name, row] of nodeRows) {
      if (!nodes.has(name)) {
        row.tr.remove();
        nodeRows.delete(name);
      }
    }
    const names = [...nodes.keys()].sort();
    for (const name of names) {
      const view = nodes.get(name);
      if (!nodeRows.has(name)) nodeRows.set(name, nodeRow(name));
      const row = nodeRows.get(name);
      row.state.textContent = view.state;
      row.state.className = `state node-${view.state}`;
      row.state.title = [view.reason, view.message].filter(Boolean).join(": ");
      setTime(row.heartbeat, view.lastHeartbeat, "never");
      row.devices.textContent = String(view.devices);
      row.address.textContent = view.address ?? "";
      row.system.textContent = [view.os, view.arch, view.version].filter(Boolean).join(" · ");
    }
    order(tbody, names.map((name) => nodeRows.get(name).tr));
    document.getElementById("nodes-empty").hidden = nodes.size > 0;
  }

  function renderEvents() {
    const newest = [...events.values()].sort((a, b) => (b.time ?? 0) - (a.time ?? 0)).slice(0, EVENT_LIMIT);
    const rows = newest.map((view) => {
      const when = el("td", { class: "when" });
      setTime(when, view.time);
      const count = view.count > 1 ? ` (×${view.count})` : "";
      return el(
        "tr",
        { class: `event-${view.type}`, dataset: { event: view.id } },
        when,
        el("td", { class: "type", text: view.type }),
        el("td", { class: "object", text: `${view.kind} ${view.object}` }),
        el("td", { class: "reason", text: view.reason }),
        el("td", { class: "message", text: view.message + count }),
      );
    });
    document.querySelector("#events tbody").replaceChildren(...rows);
    document.getElementById("events-empty").hidden = rows.length > 0;
  }

  // -- the stream ------------------------------------------------------------------------------------------

  function setConnection(kind, text) {
    const pill = document.getElementById("connection");
    pill.className = `connection ${kind}`;
    pill.textContent = text;
    document.body.dataset.connection = kind;
  }

  function replace(map, views, key) {
    map.clear();
    for (const view of views) map.set(key(view), view);
  }

  function merge(map, changes) {
    for (const [key, view] of Object.entries(changes || {})) {
      if (view === null) map.delete(key);
      else map.set(key, view);
    }
  }

  function applySnapshot(data) {
    replace(devices, data.devices, (view) => view.id);
    replace(nodes, data.nodes, (view) => view.name);
    replace(events, data.events, (view) => view.id);
    renderDevices([...devices.keys()]);
    renderNodes();
    renderEvents();
  }

  function applyChanges(data) {
    merge(devices, data.devices);
    merge(nodes, data.nodes);
    merge(events, data.events);
    if (data.devices && Object.keys(data.devices).length) renderDevices(Object.keys(data.devices));
    if (data.nodes && Object.keys(data.nodes).length) renderNodes();
    if (data.events && Object.keys(data.events).length) renderEvents();
  }

  // after the browser gave up on the stream: log in again (a 401), or try again a little later
  async function retry() {
    try {
      const response = await fetch("/api/state", { credentials: "same-origin" });
      if (response.status === 401) {
        setConnection("denied", "not logged in: open the address edgetwin cloud printed");
        return;
      }
    } catch (error) {
      // cloud-sync is away: keep trying
    }
    setTimeout(connect, RETRY_MS);
  }

  function connect() {
    source = new EventSource("/api/stream");
    source.addEventListener("snapshot", (event) => {
      applySnapshot(JSON.parse(event.data));
      setConnection("live", "live");
    });
    source.addEventListener("changes", (event) => applyChanges(JSON.parse(event.data)));
    source.addEventListener("error", () => {
      setConnection("reconnecting", "cloud-sync unreachable: reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        // the browser gave up (an answer that was not a stream): start again ourselves
        source.close();
        retry();
      }
    });
  }

  connect();
  setInterval(tick, 1000);
})();
