"""The one Lua script the gateway runs in Redis, and how its arguments and reply are laid out.

A call carries a batch: the admissions of several requests of one project
(each charges all of its GCRA buckets or none, in order, with the arithmetic
of ``ratelimit_gcra.decide``, and may read one cache entry), plus token
reconciliations and cache writes that earlier requests left pending. Redis
runs a script alone, so each admission is atomic across every gateway
process. Numbers travel as two space-separated strings (parsed by the
script) because each separate argument costs the client more than the
parsing costs Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelcycle.gateway.ratelimit_gcra import PERIOD_S, Bucket

# ARGV[1]: "now period r m w": r admissions, m reconciliations, w writes.
# ARGV[2]: per admission "n f" then n times "limit cost"; then m times "limit delta".
# KEYS: per admission its n bucket keys, then (f = 1) the cache key to read; then the m
#       reconciled bucket keys; then the w cache keys to write.
# ARGV[3...]: payload and ttl (ms) per write.
# Reply, per admission: allowed ('1'/'0'), retry (s), its n tats, then (f = 1) the value
# read (nil: none). Numbers as strings: Lua numbers would come back as integers.
SCRIPT = """
local head, nums = {}, {}
for x in string.gmatch(ARGV[1], '%S+') do head[#head + 1] = tonumber(x) end
for x in string.gmatch(ARGV[2], '%S+') do nums[#nums + 1] = tonumber(x) end
local now, period, r, m, w = head[1], head[2], head[3], head[4], head[5]
local function stored(key)
  local tat = tonumber(redis.call('GET', key))
  if tat == nil or tat < now then return now end
  return tat
end
local function save(key, tat)
  if tat <= now then
    redis.call('DEL', key)
  else
    local ttl = math.ceil((tat - now) * 1000) + 1000
    redis.call('SET', key, string.format('%.9f', tat), 'PX', ttl)
  end
end
local admissions, k, p = {}, 0, 0
for q = 1, r do
  local n, f = nums[p + 1], nums[p + 2]
  admissions[q] = {n, f, k, p + 2}
  k, p = k + n + f, p + 2 + 2 * n
end
for j = 1, m do
  local key = KEYS[k + j]
  save(key, stored(key) + nums[p + 2 * j] * (period / nums[p + 2 * j - 1]))
end
for j = 1, w do
  redis.call('SET', KEYS[k + m + j], ARGV[1 + 2 * j], 'PX', ARGV[2 + 2 * j])
end
local out = {}
for q = 1, r do
  local n, f, k0, p0 = admissions[q][1], admissions[q][2], admissions[q][3], admissions[q][4]
  local base, after, retry = {}, {}, 0
  for i = 1, n do
    base[i] = stored(KEYS[k0 + i])
    after[i] = base[i] + nums[p0 + 2 * i] * (period / nums[p0 + 2 * i - 1])
    local over = after[i] - now - period
    if over > 1e-6 and over > retry then retry = over end
  end
  out[#out + 1] = retry > 0 and '0' or '1'
  out[#out + 1] = string.format('%.9f', retry)
  for i = 1, n do
    if retry == 0 then save(KEYS[k0 + i], after[i]) end
    out[#out + 1] = string.format('%.9f', retry > 0 and base[i] or after[i])
  end
  if f == 1 then out[#out + 1] = redis.call('GET', KEYS[k0 + n + 1]) end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """One request's part of a batch: its buckets (Redis keys included) and a key to read."""

    buckets: Sequence[Bucket]
    keys: Sequence[str]
    fetch: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The script's answer to one admission."""

    allowed: bool
    tats: list[float]
    value: bytes | None


def arguments(
    now: float,
    admissions: Sequence[Admission],
    settle: Sequence[tuple[str, int, int]],
    writes: dict[str, tuple[bytes, int]],
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one call; ``settle`` holds (Redis key, limit, delta)."""
    keys: list[str] = []
    numbers: list[str] = []
    for admission in admissions:
        keys += admission.keys
        numbers.append(f"{len(admission.buckets)} {int(admission.fetch is not None)}")
        numbers += [f"{bucket.limit} {bucket.cost}" for bucket in admission.buckets]
        if admission.fetch is not None:
            keys.append(admission.fetch)
    keys += [key for key, _, _ in settle]
    numbers += [f"{limit} {delta}" for _, limit, delta in settle]
    keys += writes
    head = f"{now!r} {PERIOD_S!r} {len(admissions)} {len(settle)} {len(writes)}"
    args: list[Any] = [head, " ".join(numbers)]
    for payload, ttl_ms in writes.values():
        args += [payload, ttl_ms]
    return keys, args


def answers(reply: Sequence[Any], admissions: Sequence[Admission]) -> list[Answer]:
    """The reply of one call, split per admission."""
    out: list[Answer] = []
    at = 0
    for admission in admissions:
        count = len(admission.buckets)
        allowed = reply[at] in (b"1", "1")
        tats = [float(value) for value in reply[at + 2 : at + 2 + count]]
        at += 2 + count
        value = None
        if admission.fetch is not None:
            value = reply[at] if at < len(reply) else None
            at += 1
        out.append(Answer(allowed, tats, value))
    return out
