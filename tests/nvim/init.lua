-- Test-only init for tests/test_nvim.py: load the real examples/nvim/finecode.lua, wait for
-- the server to attach to the opened .py file, run `:FineCode run <actions>`, record what
-- Neovim saw (LspProgress, notifications, the run's result, vim.diagnostic) as JSON lines, then
-- quit.
-- Env: FINECODE_TEST_OUT (jsonl), FINECODE_TEST_CONFIG (finecode.lua),
--      FINECODE_TEST_ACTIONS (space-separated), FINECODE_TEST_TIMEOUT_MS (hard timeout).
-- Exit codes: 0 ok; 1 Lua error; 2 server exited early; 3 hard timeout.
local out_path = assert(os.getenv('FINECODE_TEST_OUT'), 'FINECODE_TEST_OUT not set')
local config = assert(os.getenv('FINECODE_TEST_CONFIG'), 'FINECODE_TEST_CONFIG not set')
local actions = os.getenv('FINECODE_TEST_ACTIONS') or 'stats lint'
local timeout_ms = tonumber(os.getenv('FINECODE_TEST_TIMEOUT_MS') or '30000')
local t0 = vim.uv.hrtime()

-- ftplugin/python.vim probes the python3 provider (~1 s): off, before the buffer loads.
vim.g.loaded_python3_provider = 0
vim.g.loaded_node_provider = 0
vim.g.loaded_ruby_provider = 0
vim.g.loaded_perl_provider = 0

local function record(ev)
  ev.t_ms = math.floor((vim.uv.hrtime() - t0) / 1e6)
  local f = assert(io.open(out_path, 'a'))
  f:write(vim.json.encode(ev), '\n')
  f:close()
end

local finished = false
local function finish(code)
  if finished then
    return
  end
  finished = true
  for _, c in ipairs(vim.lsp.get_clients()) do
    c:stop()
  end
  local stopped = vim.wait(3000, function()
    return #vim.lsp.get_clients() == 0
  end, 10)
  record({ event = 'exit', code = code, clients_stopped = stopped })
  if code == 0 then
    vim.cmd('qa!')
  else
    vim.cmd('cquit! ' .. code)
  end
end

vim.defer_fn(function()
  record({ event = 'timeout', after_ms = timeout_ms })
  finish(3)
end, timeout_ms)

local orig_notify = vim.notify
vim.notify = function(msg, level, opts)
  record({ event = 'notify', msg = tostring(msg), level = level or vim.log.levels.INFO })
  return orig_notify(msg, level, opts)
end

local state = { done = false, ended = false }
local function maybe_finish()
  if state.done and state.ended then
    vim.schedule(function()
      finish(0)
    end)
  end
end

vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(ev)
    local v = ev.data.params.value or {}
    record({
      event = 'progress', token = ev.data.params.token, kind = v.kind, title = v.title,
      message = v.message, percentage = v.percentage, cancellable = v.cancellable,
    })
    if v.kind == 'end' then
      state.ended = true
      maybe_finish()
    end
  end,
})

--- Everything vim.diagnostic holds, with the file each entry belongs to.
local function diagnostics()
  local found = {}
  for _, d in ipairs(vim.diagnostic.get()) do
    table.insert(found, { file = vim.api.nvim_buf_get_name(d.bufnr), lnum = d.lnum, col = d.col,
      code = d.code, source = d.source, severity = d.severity })
  end
  return found
end

vim.api.nvim_create_autocmd('User', {
  pattern = 'FineCodeRunDone',
  callback = function(ev)
    local d = ev.data or {}
    record({ event = 'diagnostics', items = diagnostics() })
    record({
      event = 'done', actions = d.actions,
      err = d.error and { code = d.error.code, message = d.error.message } or vim.NIL,
      summary = d.result and d.result.summary or vim.NIL,
      results = d.result and d.result.results or vim.NIL,
    })
    state.done = true
    if d.error then
      vim.schedule(function()
        finish(1)
      end)
    else
      maybe_finish()
    end
  end,
})

local ok, err = pcall(dofile, config)
if not ok then
  record({ event = 'error', msg = tostring(err) })
  vim.schedule(function()
    finish(1)
  end)
end

-- Watch the server's life without replacing the config's own fields.
vim.lsp.config('finecode', {
  on_exit = function(code, signal)
    record({ event = 'server_exit', code = code, signal = signal })
    if not finished then
      vim.schedule(function()
        finish(2)
      end)
    end
  end,
})

local started = false
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(ev)
    local client = assert(vim.lsp.get_client_by_id(ev.data.client_id))
    if client.name ~= 'finecode' or started then
      return
    end
    started = true
    record({
      event = 'attach', root_dir = client.root_dir, bufnr = ev.buf,
      workspace_folders = client.workspace_folders,
      client_cap_workDoneProgress = vim.tbl_get(client.capabilities, 'window', 'workDoneProgress'),
      server_commands = vim.tbl_get(client.server_capabilities, 'executeCommandProvider', 'commands'),
    })
    vim.schedule(function()
      local okc, e = pcall(function()
        record({ event = 'completion', items = vim.fn.getcompletion('FineCode run ', 'cmdline') })
        vim.cmd('FineCode run ' .. actions)
      end)
      if not okc then
        record({ event = 'error', msg = tostring(e) })
        finish(1)
      end
    end)
  end,
})
