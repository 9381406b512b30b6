-- Delete dead jobs for good: the given ones, or the oldest by their time of death.
--
-- ARGV[2]  with no ids: delete only jobs dead this many ms or longer, '' for any age
-- ARGV[3]  with no ids: how many at most
-- ARGV[4..]  job ids to delete; ids not in the dead-letter set are skipped
-- Returns how many jobs were deleted.

local ids = {}
if #ARGV >= 4 then
  for i = 4, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  local cutoff = ARGV[2] == '' and '+inf' or now_ms() - tonumber(ARGV[2])
  ids = dead_before(cutoff, tonumber(ARGV[3]))
end
return purge(ids)
