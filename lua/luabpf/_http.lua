-- SPDX-License-Identifier: MIT
-- A tiny HTTP/1.1 server and client on the host's loop (luv), enough for a
-- Prometheus endpoint and for `luabpf top` to read one. Not a web framework:
-- GET and HEAD, no chunked requests, no TLS.
local uv = require("luv")

local M = {}

local REASON = {
  [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
  [413] = "Request Header Fields Too Large", [500] = "Internal Server Error",
}
local MAX_HEAD = 16384
local IDLE_MS = 30000

local function close(h)
  if h and not h:is_closing() then h:close() end
end

--- Parse "http://host:port/path" (port defaults to 80, path to "/").
function M.parse_url(url)
  local host, port, path = url:match("^http://%[([^%]]+)%]:?(%d*)(/?.*)$")
  if not host then host, port, path = url:match("^http://([^/:]+):?(%d*)(/?.*)$") end
  if not host then return nil, ("'%s' is not an http:// URL"):format(url) end
  return { host = host, port = tonumber(port) or 80, path = path ~= "" and path or "/" }
end

-- One connection: read requests, answer each with handler(req) -> status,
-- headers, body. Keep-alive unless the client says otherwise (Prometheus
-- reuses its connection between scrapes).
local function serve_conn(server, conn)
  local buf = ""
  local idle = uv.new_timer()
  local function done()
    idle:stop()
    close(idle)
    close(conn)
    server.conns[conn] = nil
  end
  server.conns[conn] = done
  local function arm() idle:start(IDLE_MS, 0, done) end
  arm()
  local function respond(status, headers, body, keep, head_only)
    local out = { ("HTTP/1.1 %d %s\r\n"):format(status, REASON[status] or "") }
    headers = headers or {}
    headers["Content-Length"] = tostring(#body)
    headers["Connection"] = keep and "keep-alive" or "close"
    for k, v in pairs(headers) do out[#out + 1] = k .. ": " .. v .. "\r\n" end
    out[#out + 1] = "\r\n"
    if not head_only then out[#out + 1] = body end
    conn:write(out)
    if not keep then conn:shutdown(function() done() end) end
  end
  conn:read_start(function(err, chunk)
    if err or not chunk then return done() end
    buf = buf .. chunk
    while true do
      local e = buf:find("\r\n\r\n", 1, true)
      if not e then
        if #buf > MAX_HEAD then
          conn:read_stop()
          respond(413, { ["Content-Type"] = "text/plain" }, "request head too large\n", false)
        end
        return
      end
      local head = buf:sub(1, e - 1)
      buf = buf:sub(e + 4)
      arm()
      local method, target, version = head:match("^(%u+) (%S+) HTTP/(%d%.%d)")
      if not method then
        conn:read_stop()
        return respond(400, { ["Content-Type"] = "text/plain" }, "bad request\n", false)
      end
      local headers = {}
      for k, v in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[k:lower()] = v end
      local c = (headers.connection or ""):lower()
      local keep = (version == "1.1" and c ~= "close") or c == "keep-alive"
      if method ~= "GET" and method ~= "HEAD" then
        respond(405, { ["Content-Type"] = "text/plain", Allow = "GET, HEAD" }, "only GET and HEAD\n", keep)
      else
        local req = { method = method, target = target, path = target:match("^[^?]*"),
          query = target:match("%?(.*)$"), headers = headers }
        local ok, status, rheaders, body = pcall(server.handler, req)
        if not ok then
          bpf.log("error", ("http server %s: %s"):format(server.url, tostring(status)))
          status, rheaders, body = 500, { ["Content-Type"] = "text/plain" }, "internal error\n"
        end
        respond(status, rheaders, body or "", keep, method == "HEAD")
      end
      if not keep then conn:read_stop() return end
    end
  end)
end

--- Listen on address:port (port 0: any free port); handler(req) returns
-- status, headers, body. Returns a server {url, address, port, close()} or
-- nil, err, errno.
function M.serve(address, port, handler)
  local tcp = uv.new_tcp()
  local ok, err, code = tcp:bind(address, port)
  if not ok then
    tcp:close()
    return nil, ("can't listen on %s:%d: %s"):format(address, port, err), code
  end
  local server = { handler = handler, conns = {}, tcp = tcp }
  ok, err, code = tcp:listen(128, function(lerr)
    if lerr then return end
    local conn = uv.new_tcp()
    if not tcp:accept(conn) then return conn:close() end
    serve_conn(server, conn)
  end)
  if not ok then
    tcp:close()
    return nil, ("can't listen on %s:%d: %s"):format(address, port, err), code
  end
  local name = tcp:getsockname()
  server.address, server.port = name.ip, name.port
  local host = name.ip:find(":", 1, true) and "[" .. name.ip .. "]" or name.ip
  server.url = ("http://%s:%d"):format(host, name.port)
  function server.close()
    for _, done in pairs(server.conns) do done() end
    close(tcp)
  end
  return server
end

--- GET url; callback(nil, err) or callback({status, headers, body}).
-- opts.timeout: milliseconds (default 5000).
function M.get(url, callback, opts)
  local u, perr = M.parse_url(url)
  if not u then return callback(nil, perr) end
  local timeout = (opts and opts.timeout) or 5000
  local tcp = uv.new_tcp()
  local timer = uv.new_timer()
  local finished = false
  local function finish(res, err)
    if finished then return end
    finished = true
    timer:stop()
    close(timer)
    close(tcp)
    callback(res, err)
  end
  timer:start(timeout, 0, function() finish(nil, ("%s: no answer within %d ms"):format(url, timeout)) end)
  local function connect(ip)
    tcp:connect(ip, u.port, function(cerr)
      if cerr then return finish(nil, ("%s: can't connect: %s"):format(url, cerr)) end
      local chunks = {}
      tcp:read_start(function(rerr, chunk)
        if rerr then return finish(nil, ("%s: %s"):format(url, rerr)) end
        if chunk then chunks[#chunks + 1] = chunk return end
        local data = table.concat(chunks)
        local e = data:find("\r\n\r\n", 1, true)
        local status = tonumber(data:match("^HTTP/%d%.%d (%d%d%d)"))
        if not e or not status then return finish(nil, url .. ": not an HTTP answer") end
        local headers = {}
        for k, v in data:sub(1, e - 1):gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[k:lower()] = v end
        finish({ status = status, headers = headers, body = data:sub(e + 4) })
      end)
      local host = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
      tcp:write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/plain\r\nConnection: close\r\n\r\n")
        :format(u.path, host, u.port))
    end)
  end
  if u.host:match("^[%d%.]+$") or u.host:find(":", 1, true) then
    connect(u.host)
  else
    uv.getaddrinfo(u.host, nil, { socktype = "stream" }, function(gerr, res)
      if gerr or not res or not res[1] then
        return finish(nil, ("%s: can't resolve '%s': %s"):format(url, u.host, tostring(gerr)))
      end
      connect(res[1].addr)
    end)
  end
end

return M
