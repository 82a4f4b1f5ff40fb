"""One catalogue edit of a design name at a time (POST and DELETE /api/designs): the edit
claims the name in one Redis step before its job is enqueued, and lets go of it when the
enqueue failed; a client's retry while it runs is 409 `edit_pending` naming its URL."""

from __future__ import annotations

import uuid

from flask import current_app, url_for
from redis.exceptions import RedisError
from rq.job import Job

from web.errors import RequestRefused
from worker.core.queueing import ENDED

PENDING = "pairsearch:edit-pending:"  # + design name: the id of the edit of it under way
ENQUEUE_GRACE_S = 120  # a claimed edit's job exists within a request's upload time
# an edit's job waits for its turn and the catalogue lock within a day; a longer claim costs
# nothing, since an ended or vanished holder frees it at once
QUEUE_ALLOWANCE_S = 24 * 3600
# the claim: free when nobody holds it, or the holder's job has ended, or it has no job and
# was claimed ENQUEUE_GRACE_S ago (its request failed); else the holder's id
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder then
  local status = redis.call('HGET', ARGV[4] .. holder, 'status')
  local ended = false
  for i = 5, #ARGV do if status == ARGV[i] then ended = true end end
  local young = redis.call('TTL', KEYS[1]) > tonumber(ARGV[2]) - tonumber(ARGV[3])
  if not ended and (status or young) then return holder end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


def claim_ttl(settings) -> int:
    """How long a claim lives: past its edit's end however short RESULT_TTL is (else a retry
    would queue the same edit again); an ended or vanished holder frees it sooner."""
    return max(settings.result_ttl, settings.edit_timeout + QUEUE_ALLOWANCE_S)


def claim(name: str) -> str:
    """A new edit's id (a job id as a search's: GET /api/edits/<id> reads it), made the edit
    of `name` under way in one step; 409 while another still is (its job not ended, or not
    enqueued yet: claimed within ENQUEUE_GRACE_S)."""
    edit_id = uuid.uuid4().hex
    redis = current_app.extensions["redis"]
    holder = redis.eval(_CLAIM, 1, PENDING + name, edit_id,
                        claim_ttl(current_app.config["SETTINGS"]), ENQUEUE_GRACE_S,
                        Job.redis_job_namespace_prefix, *(s.value for s in ENDED))
    if holder:
        holder = holder.decode() if isinstance(holder, bytes) else holder
        raise RequestRefused(409, "edit_pending", f"an edit of {name!r} is still under way: "
                             f"see {url_for('designs.get_edit', edit_id=holder)}")
    return edit_id


def release(name: str, edit_id: str) -> None:
    """Let go of the claim on `name` if it is still `edit_id`'s (its job never enqueued), so a
    retry is not refused for ENQUEUE_GRACE_S pointing at an edit that does not exist."""
    try:
        current_app.extensions["redis"].eval(_RELEASE, 1, PENDING + name, edit_id)
    except RedisError:  # the claim lapses after ENQUEUE_GRACE_S all the same
        pass
