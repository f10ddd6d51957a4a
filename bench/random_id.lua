-- wrk script: METHOD PREFIX N -> requests METHOD PREFIX..k with k uniform in 0..N-1
-- e.g. wrk ... -s random_id.lua URL -- POST /orders/checkout/ 100000
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  method, prefix, n = args[1], args[2], tonumber(args[3])
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  return wrk.format(method, prefix .. math.random(0, n - 1))
end
