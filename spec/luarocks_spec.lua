-- The rockspec: a real source, and `luarocks make` from a checkout installs a module that
-- works on its own. The repository's files (what a clone holds: tracked and new files,
-- not the build outputs) are copied to a temporary folder and built there into a
-- temporary tree; a separate Lua whose LUA_PATH and LUA_CPATH name only that tree then
-- writes to the test MinIO with the installed module (spec/support/installed_smoke.lua),
-- and this spec reads the object back.
local helpers = require "helpers"

local LUA = os.getenv("LUA") or "lua5.4"
local ROCKSPEC = "s3sink-0.1.0-1.rockspec"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs a shell command without the sanitizer preload of the ASan run (luarocks, make and
-- the compiler are not built for it); returns ok, output.
local function sh(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS sh -c "
    .. quote(cmd) .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function load_rockspec(path)
  local env = {}
  assert(loadfile(path, "t", env))()
  return env
end

describe("the rockspec", function()
  local spec = load_rockspec(ROCKSPEC)

  it("names a real source: the project's repository at the release's tag", function()
    assert.matches("^git%+https://[%w.-]+/[%w._/-]+%.git$", spec.source.url)
    local version = spec.version:match("^(.-)%-%d+$")
    assert.equal(ROCKSPEC, ("%s-%s.rockspec"):format(spec.package, spec.version))
    assert.equal("v" .. version, spec.source.tag)
    -- one version: the runtime's, the Python package's and the rock's
    assert.equal(version, read("runtime/include/s3sink.h"):match('#define S3SINK_VERSION "([^"]+)"'))
    assert.equal(version, read("bindings/python/pyproject.toml"):match('\nversion = "([^"]+)"'))
    -- the README's install section names the same repository
    assert.truthy(read("README.md"):find(spec.source.url, 1, true), "README does not name " .. spec.source.url)
  end)

  it("passes luarocks lint", function()
    local ok, out = sh("luarocks --lua-version=5.4 lint " .. ROCKSPEC)
    assert(ok, "luarocks lint (make deps-apt installs luarocks):\n" .. out)
  end)
end)

describe("luarocks make", function()
  local tmp

  setup(function()
    local ok, out = sh("mktemp -d \"${TMPDIR:-/tmp}/s3sink-rocks.XXXXXX\"")
    assert(ok, out)
    tmp = out:gsub("%s+$", "")
  end)

  teardown(function()
    if tmp then sh("rm -rf " .. quote(tmp)) end
  end)

  it("builds a copy of the checkout into a temporary tree, whose module writes to MinIO on its own", function()
    helpers.require_minio()
    local src, tree = tmp .. "/src", tmp .. "/tree"
    local list = tmp .. "/files"
    local ok, out = sh(table.concat({
      "mkdir -p " .. quote(src),
      "git ls-files -z --cached --others --exclude-standard > " .. quote(list),
      "tar --null -T " .. quote(list) .. " --ignore-failed-read -cf - | tar -xf - -C " .. quote(src),
    }, " && "))
    assert(ok, "copying the checkout's files (git ls-files; the specs run in a git checkout):\n" .. out)
    ok, out = sh("cd " .. quote(src) .. " && luarocks --lua-version=5.4 make --tree "
      .. quote(tree) .. " " .. ROCKSPEC)
    assert(ok, "luarocks make:\n" .. out)
    local installed = tree .. "/lib/lua/5.4/s3sink.so"
    assert(io.open(installed, "rb")):close()

    local bucket, client = helpers.new_bucket()
    ok, out = sh(table.concat({
      "LUA_PATH=" .. quote(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua"),
      "LUA_CPATH=" .. quote(tree .. "/lib/lua/5.4/?.so"),
      LUA, "spec/support/installed_smoke.lua", quote(bucket), "rocks/",
    }, " "))
    assert(ok, "the installed module:\n" .. out)
    assert.equal(installed, out:match("module (%S+)"))
    assert.equal("csv,json", out:match("formats (%S+)"))
    local key = out:match("key (%S+)")
    local objs = helpers.objects(client, "rocks/")
    assert.equal(1, #objs)
    assert.equal(key, objs[1].key)
    assert.equal('{"id":1,"name":"alice","diff":1,"time":1700000000000}\n'
      .. '{"id":2,"name":null,"diff":1,"time":1700000000000}\n', objs[1].body)
  end)
end)
