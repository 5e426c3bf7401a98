-- wrk script of bench/auth.sh: POSTs the file $AUTH_BODY as JSON, with the headers of the file
-- $AUTH_HEADERS (one "Name: value" a line; unset or empty: none), on every request.
local f = assert(io.open(os.getenv("AUTH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local headers = os.getenv("AUTH_HEADERS")
if headers and headers ~= "" then
  for line in io.lines(headers) do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      for k in pairs(wrk.headers) do  -- one header per name, whatever its case
        if k:lower() == name:lower() then
          wrk.headers[k] = nil
        end
      end
      wrk.headers[name] = value
    end
  end
end
