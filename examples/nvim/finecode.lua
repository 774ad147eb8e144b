-- FineCode WM for Neovim 0.11+: a drop-in LSP config plus a `:FineCode` command.
--
-- Load it from init.lua with `dofile('/path/to/finecode.lua')`, or copy it to
-- ~/.config/nvim/plugin/finecode.lua. See README.md next to this file.
--
-- Optional globals, read when this file is loaded (set them before loading it):
--   vim.g.finecode_cmd           command that starts the server   (default {'finecode-wm', 'lsp'})
--   vim.g.finecode_root_markers  how to find the *workspace* root (default {'.git', 'pyproject.toml'})
--   vim.g.finecode_init_options  initializationOptions, e.g. {warmRunners = false, maxParallel = 2}
--                                {trusted = true} lets the server warm runners and pull
--                                diagnostics unasked: set it only for repositories you trust
--                                (or run `finecode-wm trust DIR`; see docs/trust.md)
--   vim.g.finecode_progress_echo false to not echo progress in the command line (default true)
--
-- After a run finishes, `User FineCodeRunDone` fires with
-- data = {actions = {...}, result = <runBatch result>|nil, error = <LSP error>|nil}.

local NAME = 'finecode'
local M = { active = {} } -- active: progress token -> client id

-- Root: the WM wants the *workspace* (the folder that holds all projects; it discovers every
-- pyproject.toml with [tool.finecode] below it), not a single project. `.git` is searched first
-- through all ancestors, so in a multi-project repository every file of every project gets the
-- repository root and one shared server. Only outside a git repository does the nearest
-- pyproject.toml (= that one project) become the root. `workspace_required` keeps the server
-- from starting for a stray file with no root at all.
vim.lsp.config(NAME, {
  cmd = vim.g.finecode_cmd or { 'finecode-wm', 'lsp' },
  filetypes = { 'python' },
  root_markers = vim.g.finecode_root_markers or { '.git', 'pyproject.toml' },
  workspace_required = true,
  init_options = vim.g.finecode_init_options or vim.empty_dict(),
  -- Findings arrive pushed (textDocument/publishDiagnostics) after every run, for every file of
  -- the workspace. Neovim would also pull open buffers on its own and keep those apart, showing
  -- each finding twice: take the pull side away and use push only.
  on_init = function(client)
    client.server_capabilities.diagnosticProvider = nil
  end,
})
vim.lsp.enable(NAME)

--- The FineCode client for the current buffer, else the only FineCode client running.
local function get_client()
  local clients = vim.lsp.get_clients({ name = NAME, bufnr = 0 })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = NAME })
  end
  if #clients == 0 then
    vim.notify('FineCode: no server running; open a Python file inside a workspace first',
      vim.log.levels.ERROR)
    return nil
  end
  return clients[1]
end

--- A project path as the user thinks of it: relative to the workspace root.
local function short(client, path)
  local root = client.root_dir
  if type(path) ~= 'string' then
    return tostring(path)
  end
  if root and path:sub(1, #root + 1) == root .. '/' then
    return path:sub(#root + 2)
  end
  return path == root and '.' or path
end

local function projects_of(result)
  if type(result) == 'table' and type(result.projects) == 'table' then
    return result.projects
  end
  return type(result) == 'table' and result or {}
end

--- Run `finecode.runBatch` through workspace/executeCommand. The server creates the progress
--- token itself (Neovim advertises window.workDoneProgress), so progress shows up through
--- Neovim's own $/progress handling (LspProgress, vim.lsp.status()).
function M.run(actions, on_done)
  local client = get_client()
  if not client then
    return
  end
  local label = table.concat(actions, ', ')
  local req_id
  local function handler(err, result)
    if M.request_id == req_id then
      M.request_id = nil
    end
    if err then
      vim.notify(('FineCode %s: %s'):format(label, err.message or vim.inspect(err)),
        vim.log.levels.ERROR)
    else
      result = type(result) == 'table' and result or {}
      local s = result.summary or {}
      local lines = { ('FineCode %s: %d ok, %d failed, %d cancelled'):format(
        label, s.ok or 0, s.failed or 0, s.cancelled or 0) }
      for _, entry in ipairs(result.results or {}) do
        if entry.status ~= 'ok' then
          local why = tostring(entry.error or ''):match('^[^\n]*')
          table.insert(lines, ('  %s · %s %s: %s'):format(
            entry.action, short(client, entry.project), entry.status, why))
        end
      end
      local level = vim.log.levels.INFO
      if (s.failed or 0) > 0 then
        level = vim.log.levels.ERROR
      elseif (s.cancelled or 0) > 0 then
        level = vim.log.levels.WARN
      end
      vim.notify(table.concat(lines, '\n'), level)
    end
    local data = { actions = actions, result = result, error = err }
    vim.api.nvim_exec_autocmds('User', { pattern = 'FineCodeRunDone', data = data })
    if on_done then
      on_done(err, result)
    end
  end
  local params = { command = 'finecode.runBatch', arguments = { { actions = actions } } }
  local ok, id = client:request('workspace/executeCommand', params, handler, 0)
  if ok then
    req_id = id
    M.request_id, M.request_client, M.request_actions = id, client, actions
  else
    vim.notify('FineCode: the server is not running', vim.log.levels.ERROR)
  end
end

--- Cancel the running FineCode work: window/workDoneProgress/cancel on its progress token, so
--- the server answers the request with the results finished so far. If the request is still
--- open a second later (no progress yet, or the server ignored the token), fall back to
--- $/cancelRequest; Neovim drops the RequestCancelled answer, so the results are lost then.
function M.cancel()
  local id, client = M.request_id, M.request_client
  for token, client_id in pairs(M.active) do
    local c = vim.lsp.get_client_by_id(client_id)
    if c then
      c:notify('window/workDoneProgress/cancel', { token = token })
    end
  end
  if not id then
    if next(M.active) == nil then
      vim.notify('FineCode: nothing to cancel', vim.log.levels.INFO)
    end
    return
  end
  vim.defer_fn(function()
    if M.request_id == id and client and not client:is_stopped() then
      client:cancel_request(id)
      M.request_id = nil
      vim.notify('FineCode: run cancelled', vim.log.levels.WARN)
      vim.api.nvim_exec_autocmds('User', { pattern = 'FineCodeRunDone', data = {
        actions = M.request_actions, error = { code = -32800, message = 'cancelled' } } })
    end
  end, next(M.active) and 1000 or 0)
end

--- {projects} from finecode.listProjects, synchronously (for completion and :FineCode list).
function M.list_projects(timeout_ms)
  local client = vim.lsp.get_clients({ name = NAME, bufnr = 0 })[1]
    or vim.lsp.get_clients({ name = NAME })[1]
  if not client then
    return nil, nil
  end
  local resp = client:request_sync('workspace/executeCommand',
    { command = 'finecode.listProjects', arguments = {} }, timeout_ms or 1000, 0)
  if not resp or resp.err then
    return nil, client
  end
  return projects_of(resp.result), client
end

local function list()
  local projects, client = M.list_projects(3000)
  if not client then
    get_client() -- reports "no server"
    return
  end
  if not projects then
    vim.notify('FineCode: finecode.listProjects failed', vim.log.levels.ERROR)
    return
  end
  local lines = { ('FineCode: %d project(s) in %s'):format(#projects, client.root_dir) }
  for _, p in ipairs(projects) do
    table.insert(lines, ('  %s: %s'):format(p.name or short(client, p.path),
      table.concat(p.actions or {}, ', ')))
  end
  vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
end

local function action_names()
  local names, seen = {}, {}
  for _, p in ipairs(M.list_projects(1000) or {}) do
    for _, a in ipairs(p.actions or {}) do
      if not seen[a] then
        seen[a] = true
        table.insert(names, a)
      end
    end
  end
  table.sort(names)
  return names
end

local subcommands = { 'run', 'list', 'cancel' }

vim.api.nvim_create_user_command('FineCode', function(opts)
  local sub = opts.fargs[1]
  if sub == 'run' then
    local actions = vim.list_slice(opts.fargs, 2)
    if #actions == 0 then
      vim.notify('FineCode: usage :FineCode run <action> [<action> ...]', vim.log.levels.ERROR)
      return
    end
    M.run(actions)
  elseif sub == 'list' then
    list()
  elseif sub == 'cancel' then
    M.cancel()
  else
    vim.notify('FineCode: usage :FineCode run <action>... | list | cancel', vim.log.levels.ERROR)
  end
end, {
  nargs = '+',
  desc = 'FineCode: run actions across the workspace, list projects',
  complete = function(arglead, cmdline)
    local words = vim.split(cmdline:sub(1, -#arglead - 1), '%s+', { trimempty = true })
    local candidates = {}
    if #words <= 1 then
      candidates = subcommands
    elseif words[2] == 'run' then
      candidates = action_names()
    end
    return vim.tbl_filter(function(c)
      return vim.startswith(c, arglead)
    end, candidates)
  end,
})

-- Progress is Neovim's own ($/progress -> LspProgress, vim.lsp.status() for a statusline).
-- This only remembers live tokens (for :FineCode cancel) and echoes a one-line status.
vim.api.nvim_create_autocmd('LspProgress', {
  group = vim.api.nvim_create_augroup('finecode_progress', { clear = true }),
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    local value = ev.data.params.value
    if not client or client.name ~= NAME or type(value) ~= 'table' then
      return
    end
    local token = ev.data.params.token
    if value.kind == 'begin' then
      M.active[token] = client.id
    elseif value.kind == 'end' then
      M.active[token] = nil
    end
    if vim.g.finecode_progress_echo ~= false then
      local pct = value.percentage and ('%3d%% '):format(value.percentage) or ''
      local text = value.kind == 'end' and (value.message or 'done')
        or (pct .. (value.message or value.title or ''))
      vim.api.nvim_echo({ { 'FineCode: ' .. text } }, false, {})
    end
  end,
})

return M
