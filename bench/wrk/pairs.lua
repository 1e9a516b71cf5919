-- Appended to workload.lua for create+delete pairs only (a response() hook slows every other workload):
-- each answer moves the thread's one connection to the next step of its pair.
function response(status, headers, body)
  if created then
    pair = pair + 1
  end
  created = not created
end
