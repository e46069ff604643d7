/* Operations page: a command form whose fields follow the chosen type, client-side checks,
   submission through the API (session cookie + CSRF header) and a history that updates live
   until every command has finished. */
(function () {
  "use strict";
  const form = document.getElementById("command-form");
  if (!form) return;
  const specs = JSON.parse(document.getElementById("command-specs").textContent);
  const msg = JSON.parse(document.getElementById("ops-messages").textContent);
  const lang = document.body.dataset.lang || "pt-BR";
  const csrf = document.getElementById("csrf-token").value;
  const historySize = Number(form.dataset.historySize || 20);
  const typeSelect = document.getElementById("command_type");
  const tenantSearch = document.getElementById("tenant_search");
  const tenantId = document.getElementById("tenant_id");
  const tenantOptions = document.getElementById("tenant-options");
  const tenantHint = document.getElementById("tenant-hint");
  const message = document.getElementById("form-message");
  const tbody = document.querySelector("#command-history tbody");
  const tenantsByLabel = new Map();
  let pollTimer = null;

  function specFor(type) { return specs.find((s) => s.type === type); }
  function fieldBox(name) { return form.querySelector(`[data-field="${name}"]`); }
  function paramFieldName(param) {
    return param.kind === "agent" ? "agent" : param.kind === "integration" ? "integration" : param.name;
  }
  function inputFor(param) {
    return document.getElementById(param.kind === "agent" ? "agent_id" : param.kind === "integration" ? "integration_id" : param.name);
  }
  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    message.textContent = ""; message.className = "";
  }
  function showError(field, text) {
    const el = document.getElementById(`error-${field}`);
    if (el) {
      el.textContent = text;
      const input = el.parentElement.querySelector("input:not([type=hidden]), select, textarea");
      if (input) input.setAttribute("aria-invalid", "true");
      return true;
    }
    return false;
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  async function api(method, url, body, extraHeaders) {
    const headers = { "Accept": "application/json", "X-CSRF-Token": csrf, ...(extraHeaders || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  function showFieldsFor(type) {
    form.querySelectorAll("[data-field]").forEach((el) => { el.hidden = true; });
    const spec = specFor(type);
    document.getElementById("command-description").textContent = spec ? spec.description : "";
    if (!spec) return;
    if (spec.tenant === "required" || spec.tenant === "optional") {
      fieldBox("tenant").hidden = false;
      tenantHint.textContent = spec.tenant === "optional" ? msg.optional : "";
    }
    spec.required.concat(spec.optional).forEach((param) => {
      const box = fieldBox(paramFieldName(param));
      if (box) box.hidden = false;
    });
  }

  function fillSelect(select, items) {
    select.innerHTML = "";
    const empty = document.createElement("option");
    empty.value = ""; empty.textContent = msg.choose;
    select.appendChild(empty);
    items.forEach((item) => {
      const option = document.createElement("option");
      option.value = item.id; option.textContent = item.label;
      select.appendChild(option);
    });
  }

  async function loadTenantResources(id) {
    const agentSelect = document.getElementById("agent_id");
    const integrationSelect = document.getElementById("integration_id");
    fillSelect(agentSelect, []); fillSelect(integrationSelect, []);
    if (!id) return;
    const [agents, integrations] = await Promise.all([
      api("GET", `/tenant/agents?tenant_id=${encodeURIComponent(id)}&status=all`),
      api("GET", `/tenant/integrations?tenant_id=${encodeURIComponent(id)}`),
    ]);
    if (agents.status === 200) {
      fillSelect(agentSelect, agents.data.agents.map((a) => ({ id: a.id, label: `${a.display_name} (${msg.status[a.status.toUpperCase()] || a.status})` })));
    }
    if (integrations.status === 200) {
      fillSelect(integrationSelect, integrations.data.integrations.map((i) => ({ id: i.id, label: `${i.name} · ${i.type} (${i.status})` })));
    }
  }

  let searchTimer = null;
  tenantSearch.addEventListener("input", function () {
    const label = tenantSearch.value;
    if (tenantsByLabel.has(label)) {
      tenantId.value = tenantsByLabel.get(label);
      loadTenantResources(tenantId.value);
      return;
    }
    tenantId.value = "";
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async function () {
      const q = label.trim();
      if (q.length < 2) return;
      const result = await api("GET", `/internal/tenants?status=all&limit=10&search=${encodeURIComponent(q)}`);
      if (result.status !== 200) return;
      tenantOptions.innerHTML = "";
      result.data.tenants.forEach((t) => {
        const text = `${t.name} — ${t.cnpj}`;
        tenantsByLabel.set(text, t.id);
        const option = document.createElement("option");
        option.value = text;
        tenantOptions.appendChild(option);
      });
    }, 200);
  });

  typeSelect.addEventListener("change", function () { clearErrors(); showFieldsFor(typeSelect.value); });

  function collect() {
    clearErrors();
    const spec = specFor(typeSelect.value);
    let ok = true;
    if (!spec) { showError("command_type", msg.required); return null; }
    const body = { command_type: spec.type, parameters: {} };
    if (spec.tenant === "required" && !tenantId.value) { showError("tenant_id", msg.required); ok = false; }
    if (tenantId.value && spec.tenant !== "none") body.tenant_id = tenantId.value;
    spec.required.concat(spec.optional).forEach((param) => {
      const input = inputFor(param);
      const raw = input ? input.value.trim() : "";
      const required = spec.required.includes(param);
      if (!raw) {
        if (required) { showError(`parameters.${param.name}`, msg.required); ok = false; }
        return;
      }
      body.parameters[param.name] = param.kind === "limit" ? Number(raw) : raw;
    });
    if (body.parameters.from && body.parameters.to && body.parameters.to < body.parameters.from) {
      showError("parameters.to", msg.range); ok = false;
    }
    return ok ? body : null;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const body = collect();
    if (!body) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const result = await api("POST", "/internal/operations/commands", body, { "Idempotency-Key": uuid() });
      if (result.status === 201 || result.status === 200) {
        message.textContent = msg.sent; message.className = "notice";
        await refresh();
      } else {
        const data = result.data || {};
        const field = data.details && data.details.field;
        if (!field || !showError(field, data.message)) {
          message.textContent = data.message || `HTTP ${result.status}`; message.className = "alert";
        }
      }
    } finally {
      button.disabled = false;
    }
  });

  function formatDate(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, "0");
    const time = `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
    return lang === "pt-BR"
      ? `${p(d.getUTCDate())}/${p(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ${time} UTC`
      : `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${time} UTC`;
  }
  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    return td;
  }
  function row(c) {
    const tr = document.createElement("tr");
    tr.dataset.commandId = c.command_id; tr.dataset.status = c.status;
    tr.appendChild(cell(formatDate(c.created_at)));
    tr.appendChild(cell(msg.types[c.command_type] || c.command_type));
    tr.appendChild(cell(c.tenant_name || msg.platform));
    const status = cell(undefined, "status");
    const badge = document.createElement("span");
    badge.className = `badge badge-${c.status}`; badge.textContent = msg.status[c.status] || c.status;
    status.appendChild(badge); tr.appendChild(status);
    tr.appendChild(cell(c.created_by_email || c.created_by));
    const result = cell(undefined, "result");
    if (c.error_message) {
      const span = document.createElement("span"); span.className = "alert small"; span.textContent = c.error_message;
      result.appendChild(span);
    } else if (c.output) {
      const pre = document.createElement("pre"); pre.className = "output"; pre.textContent = JSON.stringify(c.output, null, 1);
      result.appendChild(pre);
    }
    tr.appendChild(result);
    const actions = cell();
    if (c.status === "PENDING") {
      const button = document.createElement("button");
      button.type = "button"; button.className = "link cancel"; button.dataset.cancel = c.command_id;
      button.textContent = msg.cancel;
      actions.appendChild(button);
    }
    tr.appendChild(actions);
    return tr;
  }

  async function refresh() {
    const result = await api("GET", `/internal/operations/commands?limit=${historySize}`);
    if (result.status !== 200) return;
    tbody.replaceChildren(...result.data.commands.map(row));
    schedule();
  }
  function schedule() {
    clearTimeout(pollTimer);
    const active = tbody.querySelector('tr[data-status="PENDING"], tr[data-status="RUNNING"]');
    if (active) pollTimer = setTimeout(refresh, 1000);
  }

  tbody.addEventListener("click", async function (event) {
    const id = event.target.dataset && event.target.dataset.cancel;
    if (!id) return;
    const result = await api("POST", `/internal/operations/commands/${id}/cancel`);
    if (result.status !== 200) {
      message.textContent = (result.data && result.data.message) || `HTTP ${result.status}`;
      message.className = "alert";
    }
    await refresh();
  });

  showFieldsFor(typeSelect.value);
  schedule();
})();
