-- Mixed load of bench/soak.py (wrk). The tokens and tenant ids come from SOAK_CONFIG.
dofile(os.getenv("SOAK_CONFIG"))

local periods = {"7d", "30d", "90d"}
local sorts = {"name", "created_at", "mrr_estimate"}

local function get(path, token)
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

local function any_tenant()
  return tenant_ids[math.random(#tenant_ids)]
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

request = function()
  local r = math.random(1000)
  if r <= 250 then
    return get("/tenant/me", user_token)
  elseif r <= 330 then
    return get("/tenant/agents?status=all", tenant_token)
  elseif r <= 400 then
    return get("/tenant/usage?period=" .. periods[math.random(#periods)], tenant_token)
  elseif r <= 440 then
    return get("/tenant/integrations", user_token)
  elseif r <= 480 then
    return get("/tenant/incidents?status=all&limit=20", tenant_token)
  elseif r <= 680 then
    return get("/tenant/me?tenant_id=" .. any_tenant(), support_token)
  elseif r <= 760 then
    return get("/internal/tenants?status=all&limit=50&offset=" .. math.random(0, 1900)
      .. "&sort_by=" .. sorts[math.random(#sorts)], admin_token)
  elseif r <= 840 then
    return get("/internal/tenants/" .. any_tenant(), support_token)
  elseif r <= 880 then
    return get("/internal/tenants/" .. any_tenant() .. "/agents", admin_token)
  elseif r <= 920 then
    return get("/internal/usage/overview?period=" .. periods[math.random(#periods)], admin_token)
  elseif r <= 950 then
    return get("/internal/billing/overview?period=" .. periods[math.random(#periods)], admin_token)
  elseif r <= 970 then
    return get("/internal/operations/commands?limit=50", admin_token)
  elseif r <= 990 then
    return get("/metrics", admin_token)
  else
    local body = '{"command_type":"HEALTH_CHECK","tenant_id":"' .. command_tenant .. '"}'
    return wrk.format("POST", "/internal/operations/commands",
      {["Authorization"] = "Bearer " .. admin_token, ["Content-Type"] = "application/json"}, body)
  end
end
