-- Multipart uploads: the S3 client's operations against the real MinIO (the sink's use
-- of them is in spec/sink_multipart_spec.lua).
local h = require "helpers"

local MiB = 1024 * 1024

-- n bytes of text that differ along the way (so a part out of place shows)
local function bytes(n, seed)
  local line = string.format("%08d-%s\n", seed or 0, string.rep("x", 54))
  local s = string.rep(line, n // #line + 1)
  return s:sub(1, n)
end

describe("multipart upload (S3 client)", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("creates an object from parts, with the identity metadata given at creation", function()
    local key = "mp/object.csv"
    local first, second = bytes(5 * MiB, 1), bytes(1234, 2)
    local id = assert(client:create_upload(key, "text/csv", string.rep("ab", 32)))
    assert.same({ { key = key, upload_id = id } }, client:list_uploads(key))
    local e1 = assert(client:upload_part(key, id, 1, first))
    local e2 = assert(client:upload_part(key, id, 2, second))
    assert(client:complete_upload(key, id, { e1, e2 }, true))
    assert.equal(first .. second, client:get(key))
    local etag, identity = assert(client:head(key))
    assert.matches('^"?%x+%-2"?$', etag) -- the multipart form: MD5 of the parts' MD5s, "-2"
    assert.equal(string.rep("ab", 32), identity)
    assert.same({}, client:list_uploads(key)) -- completed: no longer an upload
  end)

  it("never overwrites with If-None-Match: MinIO refuses the Complete with 412", function()
    local key = "mp/taken.csv"
    assert(client:put(key, "someone else's", "text/plain", true))
    local id = assert(client:create_upload(key))
    local e1 = assert(client:upload_part(key, id, 1, bytes(100)))
    local ok, msg, code, status = client:complete_upload(key, id, { e1 }, true)
    assert.is_nil(ok)
    assert.equal("PreconditionFailed", code)
    assert.equal(412, status)
    assert.matches("already exists", msg)
    assert.equal("someone else's", client:get(key))
    -- the upload is still there until aborted
    assert.equal(1, #client:list_uploads(key))
    assert(client:abort_upload(key, id))
    assert.same({}, client:list_uploads(key))
    assert(client:abort_upload(key, id)) -- gone already: counts as aborted
  end)

  it("lists only the uploads under the prefix, and an empty prefix lists the bucket's", function()
    local a = assert(client:create_upload("mp/a.csv"))
    local b = assert(client:create_upload("mp/b.csv"))
    local found = client:list_uploads("mp/a.csv")
    assert.same({ { key = "mp/a.csv", upload_id = a } }, found)
    local all = {}
    for _, u in ipairs(client:list_uploads()) do all[u.upload_id] = u.key end
    assert.same({ [a] = "mp/a.csv", [b] = "mp/b.csv" }, all)
    assert(client:abort_upload("mp/a.csv", a))
    assert(client:abort_upload("mp/b.csv", b))
    assert.same({}, client:list_uploads())
  end)

  it("lists every page of uploads", function()
    local ids = {}
    for i = 1, 5 do ids[i] = assert(client:create_upload("mp/many.csv")) end
    local found = {}
    for _, u in ipairs(assert(client:list_uploads("mp/many.csv", 2))) do -- pages of 2
      assert.equal("mp/many.csv", u.key)
      found[#found + 1] = u.upload_id
    end
    table.sort(ids)
    table.sort(found)
    assert.same(ids, found)
    for _, id in ipairs(ids) do assert(client:abort_upload("mp/many.csv", id)) end
  end)

  it("names the fix when a part other than the last is below the minimum", function()
    local key = "mp/small.csv"
    local id = assert(client:create_upload(key))
    local e1 = assert(client:upload_part(key, id, 1, bytes(1000)))
    local e2 = assert(client:upload_part(key, id, 2, bytes(1000)))
    local ok, msg, code = client:complete_upload(key, id, { e1, e2 }, true)
    assert.is_nil(ok)
    assert.equal("EntityTooSmall", code)
    assert.matches("raise multipart_part_bytes", msg)
    assert(client:abort_upload(key, id))
  end)

  it("reports an upload that is gone, naming the likely cause", function()
    local key = "mp/gone.csv"
    local id = assert(client:create_upload(key))
    local e1 = assert(client:upload_part(key, id, 1, bytes(100)))
    assert(client:abort_upload(key, id))
    local ok, msg, code = client:complete_upload(key, id, { e1 }, true)
    assert.is_nil(ok)
    assert.equal("NoSuchUpload", code)
    assert.matches("AbortIncompleteMultipartUpload", msg)
    ok, msg, code = client:upload_part(key, id, 2, bytes(100))
    assert.is_nil(ok)
    assert.equal("NoSuchUpload", code)
  end)
end)
