-- Argo CD health of Tessera's kinds: claims, composites, managed resources, XRDs,
-- Compositions and ProviderConfigs. Argo CD runs it with the object as `obj`.
--   Progressing: the controller has not yet observed the latest spec (observedGeneration
--                lags), has not reconciled it yet, or it is Synced but not Ready yet.
--   Degraded:    Synced=False (the controller cannot do what the spec asks; the message
--                says why), or an XRD that is not Established.
--   Suspended:   reconciliation is paused (Synced=False, reason ReconcilePaused).
--   Healthy:     Ready=True (an XRD: Established=True); kinds without status.
local hs = { status = "Progressing", message = "Waiting for the controller" }
local statusless = { Composition = true, CompositionRevision = true, ProviderConfig = true }
if statusless[obj.kind] then
  hs.status = "Healthy"
  hs.message = ""
  return hs
end
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end
local by_type = {}
for _, c in ipairs(status.conditions) do
  if c.type ~= nil then
    by_type[c.type] = c
  end
end
local function says(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end
local synced = by_type["Synced"]
if synced ~= nil and synced.status == "False" then
  if synced.reason == "ReconcilePaused" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = says(synced)
  return hs
end
local ready = by_type["Ready"] or by_type["Established"]
if ready == nil then
  hs.status = "Healthy"
  hs.message = ""
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = says(ready)
  return hs
end
if ready.type == "Established" then
  hs.status = "Degraded"
end
hs.message = says(ready)
return hs
