/* hub/schedule.h - cron schedules: the hub spawns an agent from a schedule's spec and input at
 * every slot of its cron expression (common/cron.h), exactly once per slot (docs/schedules.md).
 *
 * Exactly once: a slot is fired through the actor's ordinary Spawn with the request id
 * "schedule/<id>/<slot unix seconds>" in the schedule's namespace, so the agents table's unique
 * index on (namespace, request_id) records which slots fired, in the same transaction as the
 * agent itself. A slot fired again (after a crash between the spawn and the schedule's own
 * update, or by a standby that took over) finds its agent instead of making a second. Only the
 * leader runs a hub at all (hub/cluster.c), and the store's fencing refuses a deposed one.
 *
 * Missed slots: at start-up, the slots that passed since the stored next slot passed while no
 * hub ran; while running, a slot reached more than HUB_SCHEDULE_GRACE_S late (the hub was
 * behind) is missed too. "skip" fires none of them; "catch_up_once" fires the latest one, once.
 *
 * Memory: every schedule is held (loaded at start, at most HUB_SCHEDULES_MAX); reads never touch
 * the store. Writes go through the store's writer and change memory once durable, so an answer
 * (and what a read shows) is always what is stored.
 *
 * Threads: the schedule thread (started by hub_schedules_start) sleeps until the earliest next
 * slot, then fires; the answers of the writes and spawns come on the store's completion thread;
 * the RPC functions run on CQ threads. One lock guards the table and every schedule in it; it
 * is taken after an agent's lock (a spawn's answer) and never with another lock after it but
 * the store's queue lock (submit). */
#ifndef AGENTRY_HUB_SCHEDULE_H
#define AGENTRY_HUB_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/arena.h"
#include "common/err.h"

#define HUB_SCHEDULES_MAX 10000       /* in all; RESOURCE_EXHAUSTED beyond */
#define HUB_SCHEDULES_MAX_PER_NS 1000 /* per namespace */
/* A slot reached this late while the hub runs counts as missed (the hub was behind). */
#define HUB_SCHEDULE_GRACE_S 60
/* The label every agent a schedule spawns carries: the schedule's id (Agent.schedule_id). */
#define HUB_SCHEDULE_LABEL "agentry.dev/schedule"

struct hub;
struct hub_schedules;

/* A CreateSchedule request, checked by the caller (hub/rpc_schedule.c) except for the limits
 * and the spec with its label. Borrowed for the call. */
struct hub_schedule_new {
    const char *ns;         /* "": "default" */
    const char *request_id; /* "": none */
    const char *cron;       /* parses (ag_cron_parse) */
    const Agentry__V1__AgentSpec *spec;
    const char *input;
    const char *missed; /* "skip" or "catch_up_once" */
};

/* The answer of an asynchronous request: sc (in the request's arena) or err. Called once, with
 * no lock held, on the caller's thread or the store's completion thread. */
typedef void hub_schedule_done_fn(void *arg, const Agentry__V1__Schedule *sc,
                                  const struct ag_err *err);
/* May the caller see schedules of namespace ns? Others answer NOT_FOUND, as if absent. */
typedef bool hub_schedule_sees_fn(void *arg, const char *ns);

struct hub_schedules *hub_schedules_new(struct hub *h);
/* Start-up (hub_new, store open): every stored schedule into memory. */
int hub_schedules_load(struct hub_schedules *s, struct ag_err *err);
/* The schedule thread; hub_schedules_stop ends it (fires under way finish by themselves). */
void hub_schedules_start(struct hub_schedules *s);
void hub_schedules_stop(struct hub_schedules *s);
/* After the store is closed and the agents freed. NULL is a no-op. */
void hub_schedules_free(struct hub_schedules *s);

/* CreateSchedule: stored, then answered; a request id known in the namespace answers its
 * schedule. */
void hub_schedule_create(struct hub_schedules *s, const struct hub_schedule_new *n,
                         struct ag_arena *ar, hub_schedule_done_fn *fn, void *arg);
/* GetSchedule into *out (strings in ar): -1 with NOT_FOUND if absent or not seen. */
int hub_schedule_get(struct hub_schedules *s, const char *id, hub_schedule_sees_fn *sees,
                     void *sees_arg, struct ag_arena *ar, Agentry__V1__Schedule *out,
                     struct ag_err *err);
/* ListSchedules: those of ns ("": every namespace) the caller sees, in creation order, in ar. */
void hub_schedule_list(struct hub_schedules *s, const char *ns, hub_schedule_sees_fn *sees,
                       void *sees_arg, struct ag_arena *ar,
                       Agentry__V1__ListSchedulesResponse *out);

enum hub_schedule_change {
    HUB_SCHEDULE_PAUSE,
    HUB_SCHEDULE_RESUME, /* from the next slot after now on */
    HUB_SCHEDULE_DELETE, /* answers sc NULL on success */
};
/* Pause, resume (both idempotent) or delete one schedule, answered once stored. */
void hub_schedule_change(struct hub_schedules *s, const char *id, enum hub_schedule_change what,
                         hub_schedule_sees_fn *sees, void *sees_arg, struct ag_arena *ar,
                         hub_schedule_done_fn *fn, void *arg);

#endif
