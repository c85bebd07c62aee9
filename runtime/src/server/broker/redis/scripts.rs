//! The Lua scripts the Redis broker runs. Redis runs one script at a time, so each is atomic:
//! every node sees one order per namespace, and a batch is stored whole or not at all.
//!
//! Keys of one namespace (`<prefix>:{<namespace>}:meta`, `…:history`) share a hash tag.
//! The meta hash holds `epoch` and `top` (the last offset given out); the history is a Redis
//! Stream whose entry ids are `<offset>-0` with the fields `t` (when it was published, ms, by the
//! publishing node's clock) and `r` (the record). A missing meta hash means a new epoch: the stale history is deleted with it.

/// Publishes a batch. KEYS: `meta, history` per event, then the idempotency key if ARGV[1] > 0.
/// ARGV: idempotency window (s, 0 for none), an epoch for streams that have none, the time
/// (ms, the publishing node's clock: what history ages are measured by), the request's
/// fingerprint, then per event `channel, history size, history ttl (s), record`. Returns
/// `{0, "epoch offset,…"}`; with a key seen already, `{1, "…"}` (the stored result) when the
/// fingerprint is the same and `{2, ""}` (nothing published) when it is not. Each event is
/// published as `epoch offset index count record`: its place in the batch (from 1) and the
/// batch's size, so that followers know more of the batch is on its way.
///
/// A key holds `fingerprint result`: 33 bytes and about 20 per event of its batch.
///
/// The history is trimmed approximately (`MAXLEN ~`: whole stream nodes at a time, so at least
/// `size` entries stay), a third of the script's cost less than exact trimming; readers hold
/// recovery to `size` themselves.
pub(super) const PUBLISH: &str = r#"
local window = tonumber(ARGV[1])
local fingerprint = ARGV[4]
local n = #KEYS
if window > 0 then
  n = n - 1
  local done = redis.call('get', KEYS[#KEYS])
  if done then
    local sep = string.find(done, ' ', 1, true)
    if sep and string.sub(done, 1, sep - 1) == fingerprint then
      return {1, string.sub(done, sep + 1)}
    end
    return {2, ''}
  end
end
local ms = ARGV[3]
local ids = {}
for i = 1, n / 2 do
  local meta, history = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 * i + 1
  local channel, size, ttl, record = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  local epoch = redis.call('hget', meta, 'epoch')
  if not epoch then
    epoch = ARGV[2]
    redis.call('del', history)
    redis.call('hset', meta, 'epoch', epoch, 'top', 0)
  end
  local offset = redis.call('hincrby', meta, 'top', 1)
  if size > 0 then
    redis.call('xadd', history, 'MAXLEN', '~', size, offset .. '-0', 't', ms, 'r', record)
    redis.call('expire', history, ttl)
  end
  redis.call('publish', channel, epoch .. ' ' .. offset .. ' ' .. i .. ' ' .. n / 2 .. ' ' .. record)
  ids[i] = epoch .. ' ' .. offset
end
local result = table.concat(ids, ',')
if window > 0 then redis.call('set', KEYS[#KEYS], fingerprint .. ' ' .. result, 'EX', window) end
return {0, result}
"#;

/// A stream's epoch and top, starting a new epoch for a stream that has none. KEYS: `meta,
/// history`. ARGV: an epoch for a stream that has none. Returns `{epoch, top}`. The entries
/// after an offset are read with a plain `XRANGE` beside it (`resume.rs`): returned through Lua,
/// a thousand entries cost Redis six times the `XRANGE` itself (2.35 ms against 0.37 measured).
pub(super) const HEAD: &str = r#"
local epoch = redis.call('hget', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'epoch', epoch, 'top', 0)
end
return {epoch, tonumber(redis.call('hget', KEYS[1], 'top'))}
"#;

/// Starts a new epoch for a stream whose top went back (Redis restored an older snapshot):
/// offsets already given out must never name other events. KEYS: `meta, history`. ARGV: the
/// epoch the node saw, the new epoch. Only the first node to notice rotates it.
pub(super) const ROTATE: &str = r#"
if redis.call('hget', KEYS[1], 'epoch') == ARGV[1] then
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'epoch', ARGV[2])
end
return 1
"#;

/// A user's first connection on a node opened. KEYS: the node's users (hash: user → role), the
/// user's nodes (hash: node → count). ARGV: node, user, role. Returns 1 when no other node held
/// the user. Counts, not set membership: a quick reconnect on one node may run its join before
/// the old connection's leave, and counts come out right in either order.
pub(super) const JOIN: &str = r#"
redis.call('hset', KEYS[1], ARGV[2], ARGV[3])
local here = redis.call('hincrby', KEYS[2], ARGV[1], 1)
if here == 1 and redis.call('hlen', KEYS[2]) == 1 then return 1 end
return 0
"#;

/// A user's last connection on a node closed. KEYS and ARGV as for [`JOIN`] (without the role).
/// Returns 1 when no node holds the user any more. A node already reaped finds no count (the
/// reaper announced the user), answers 0, and leaves nothing behind.
pub(super) const LEAVE: &str = r#"
local here = redis.call('hincrby', KEYS[2], ARGV[1], -1)
if here > 0 then return 0 end
redis.call('hdel', KEYS[2], ARGV[1])
redis.call('hdel', KEYS[1], ARGV[2])
if here == 0 and redis.call('hlen', KEYS[2]) == 0 then return 1 end
return 0
"#;

/// A node is alive until Redis' clock passes now + ttl. KEYS: the nodes. ARGV: node, ttl (ms).
pub(super) const HEARTBEAT: &str = r#"
local clock = redis.call('time')
local ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('zadd', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
return 1
"#;

/// Removes nodes whose heartbeat expired, with their users. KEYS: the nodes. ARGV: the key
/// prefix. Returns `user, role, …` for every user no live node holds any more: the caller emits
/// their offline events. One call removes a dead node, so its users go offline once.
pub(super) const REAP: &str = r#"
local clock = redis.call('time')
local ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local dead = redis.call('zrangebyscore', KEYS[1], '-inf', ms, 'LIMIT', 0, 16)
local gone = {}
for _, node in ipairs(dead) do
  redis.call('zrem', KEYS[1], node)
  local users_key = ARGV[1] .. ':{presence}:node:' .. node
  local users = redis.call('hgetall', users_key)
  redis.call('del', users_key)
  for i = 1, #users, 2 do
    local nodes_key = ARGV[1] .. ':{presence}:user:' .. users[i]
    if redis.call('hdel', nodes_key, node) == 1 and redis.call('hlen', nodes_key) == 0 then
      gone[#gone + 1] = users[i]
      gone[#gone + 1] = users[i + 1]
    end
  end
end
return gone
"#;

/// Records a revocation for every node. KEYS: the revocations hash. ARGV: the revocation (JSON),
/// until when it holds (ms since the epoch), the channel every node follows. The hash lives as
/// long as its longest revocation; the message tells the nodes at once (`<until> <json>`).
pub(super) const REVOKE: &str = r#"
local clock = redis.call('time')
local ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local until_ms = tonumber(ARGV[2])
local current = tonumber(redis.call('hget', KEYS[1], ARGV[1]) or '0')
if until_ms > current then
  redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
end
local left = until_ms - ms
if left > 0 and redis.call('pttl', KEYS[1]) < left then
  redis.call('pexpire', KEYS[1], left)
end
redis.call('publish', ARGV[3], ARGV[2] .. ' ' .. ARGV[1])
return 1
"#;
