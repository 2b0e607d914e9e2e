-- SPDX-License-Identifier: MIT
-- The control socket of a running service (`luabpf attach NAME`).
-- Placeholder until the REPL lands: start(name, env) does nothing yet.
local M = {}

function M.start(name, env)
  M.name, M.env = name, env
end

return M
