/* hub/schedule.c - the schedules the hub holds and the thread that fires them (see schedule.h).
 *
 * A schedule's fields change only once the store has them: each RPC's write carries the new
 * values and its done() copies them in, in commit order (the store calls done() in submission
 * order). The schedule thread is the only writer of the fire columns (last fire, its agent,
 * fires) and of the next slot of a running schedule; it does one thing per schedule at a time
 * (busy): fire (a spawn, then an ADVANCE write) or skip (an ADVANCE write). Pause and resume
 * write paused and the next slot; an ADVANCE that commits after a pause leaves next at 0 (the
 * store's statement says so, and advance_done does the same in memory), so the two never undo
 * each other.
 *
 * A schedule is freed when its last reference goes: the table's (dropped by delete) and the
 * thread's while busy. hub_schedules_free frees what is left, as answers may never come once
 * the agents are freed (their mailboxes are dropped). */
#include "hub/schedule.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/cron.h"
#include "common/id.h"
#include "common/list.h"
#include "common/log.h"
#include "common/map.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent_table.h"
#include "hub/effects.h"
#include "hub/hub_internal.h"
#include "hub/loader.h"
#include "hub/store.h"
#include "hub/validate.h"

#define NS_PER_S ((int64_t)1000000000)
/* After a failed fire or write, the schedule waits this long before the thread tries again. */
#define SCHEDULE_RETRY_NS (1 * NS_PER_S)
/* The thread looks at the clock at least this often, so a wall-clock step is noticed. */
#define SCHEDULE_MAX_SLEEP_MS 30000
/* Schedules the thread takes in one round; the rest wait for the next (at once). */
#define SCHEDULE_ROUND 64

struct hub_schedule {
    struct ag_list link; /* in hub_schedules.all until freed */
    int refs;            /* the table's (until deleted), the thread's (while busy) */
    bool deleted;
    char id[AG_ID_LEN + 1];
    char *ns, *request_id, *cron_text, *input, *missed; /* owned */
    struct ag_cron cron;
    uint8_t *spec_bin; /* owned: the spec as given and stored */
    size_t spec_len;
    struct ag_arena arena;
    Agentry__V1__AgentSpec *spawn_spec; /* in arena: spec_bin with HUB_SCHEDULE_LABEL */
    bool paused;
    int64_t created_ns, next_ns, last_ns;
    char last_agent[AG_ID_LEN + 1];
    uint64_t fires;
    /* The schedule thread's, one piece of work at a time: */
    bool busy;
    int64_t missed_until_s; /* slots up to this one passed while no hub ran (0: none) */
    int64_t retry_ns;       /* after a failure, not before this (Unix ns) */
    int64_t slot_s;         /* the slot being fired, 0 when skipping */
    char rid[96];           /* "schedule/<id>/<slot>" */
    struct hub_store_write w;
    struct hub_store_op op; /* ADVANCE; its strings below */
    char adv_agent[AG_ID_LEN + 1];
    struct hub_schedules *owner;
};

struct hub_schedules {
    struct hub *h;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the thread: something changed, or stop */
    struct ag_list all;
    struct ag_map by_id;     /* id -> the schedules in the table */
    size_t n;                /* in the table */
    struct ag_list creating; /* create_req not yet answered (they count against the limits) */
    bool started, stopping;
    pthread_t thread;
};

struct create_req {
    struct ag_list link;
    struct hub_schedules *s;
    struct hub_schedule *sc; /* not in the table until stored */
    struct hub_store_write w;
    struct hub_store_op op;
    struct ag_arena *ar;
    hub_schedule_done_fn *fn;
    void *arg;
};

struct change_req {
    struct hub_schedules *s;
    struct hub_schedule *sc; /* reference held */
    enum hub_schedule_change what;
    struct hub_store_write w;
    struct hub_store_op op;
    struct ag_arena *ar;
    hub_schedule_done_fn *fn;
    void *arg;
};

static const char *const missed_names[] = {"skip", "catch_up_once"};

/* --- a schedule ------------------------------------------------------------------------------ */

static void schedule_free(struct hub_schedule *sc)
{
    free(sc->ns);
    free(sc->request_id);
    free(sc->cron_text);
    free(sc->input);
    free(sc->missed);
    free(sc->spec_bin);
    ag_arena_release(&sc->arena);
    free(sc);
}

/* The spec its slots spawn: the stored one and the label naming the schedule. */
static int spawn_spec_build(struct hub_schedule *sc, struct ag_err *err)
{
    Agentry__V1__AgentSpec *sp = rpc_pb_unpack_bytes(
        sc->spec_bin, sc->spec_len, &agentry__v1__agent_spec__descriptor, &sc->arena, err);
    if (!sp)
        return -1;
    Agentry__V1__AgentSpec__LabelsEntry **labels = ag_arena_alloc(&sc->arena, (sp->n_labels + 1) *
                                                                                  sizeof(*labels));
    for (size_t i = 0; i < sp->n_labels; i++)
        labels[i] = sp->labels[i];
    Agentry__V1__AgentSpec__LabelsEntry *mine = ag_arena_alloc(&sc->arena, sizeof(*mine));
    agentry__v1__agent_spec__labels_entry__init(mine);
    mine->key = HUB_SCHEDULE_LABEL;
    mine->value = sc->id;
    labels[sp->n_labels] = mine;
    sp->labels = labels;
    sp->n_labels++;
    sc->spawn_spec = sp;
    return 0;
}

/* A schedule from a row's (or a request's) fields; NULL with err if its cron or spec does not
 * read. */
static struct hub_schedule *schedule_new(const struct hub_store_schedule *r, struct ag_err *err)
{
    struct hub_schedule *sc = ag_xcalloc(1, sizeof(*sc));
    snprintf(sc->id, sizeof(sc->id), "%s", r->id);
    sc->ns = ag_xstrdup(r->namespace && *r->namespace ? r->namespace : "default");
    sc->request_id = ag_xstrdup(r->request_id ? r->request_id : "");
    sc->cron_text = ag_xstrdup(r->cron);
    sc->input = ag_xstrdup(r->input ? r->input : "");
    sc->missed = ag_xstrdup(r->missed && *r->missed ? r->missed : missed_names[0]);
    sc->spec_bin = ag_xmemdup(r->spec_len ? r->spec : (const uint8_t *)"", r->spec_len);
    sc->spec_len = r->spec_len;
    ag_arena_init(&sc->arena, NULL, 0);
    sc->paused = r->paused;
    sc->created_ns = r->created_ns;
    sc->next_ns = r->next_fire_ns;
    sc->last_ns = r->last_fire_ns;
    snprintf(sc->last_agent, sizeof(sc->last_agent), "%s",
             r->last_agent_id ? r->last_agent_id : "");
    sc->fires = r->fires;
    if (ag_cron_parse(sc->cron_text, &sc->cron, err) != 0 || spawn_spec_build(sc, err) != 0) {
        ag_err_prefix(err, "schedule '%s'", sc->id);
        schedule_free(sc);
        return NULL;
    }
    return sc;
}

static bool catch_up(const struct hub_schedule *sc)
{
    return strcmp(sc->missed, missed_names[1]) == 0;
}

/* The table holds it (one reference). Lock held. */
static void table_add(struct hub_schedules *s, struct hub_schedule *sc)
{
    sc->owner = s;
    sc->refs = 1;
    ag_list_insert_tail(&s->all, &sc->link);
    ag_map_put(&s->by_id, sc->id, sc);
    s->n++;
}

/* Drop a reference; the last one frees it. Lock held. */
static void unref_locked(struct hub_schedule *sc)
{
    if (--sc->refs > 0)
        return;
    ag_list_remove(&sc->link);
    schedule_free(sc);
}

/* The first slot strictly after Unix second t, in ns; 0 if none (cron.h: never for t in range). */
static int64_t next_after(const struct hub_schedule *sc, int64_t t)
{
    int64_t next;
    return ag_cron_next(&sc->cron, t, &next) ? next * NS_PER_S : 0;
}

static void fill_pb(const struct hub_schedule *sc, struct ag_arena *ar, Agentry__V1__Schedule *out)
{
    agentry__v1__schedule__init(out);
    out->id = ag_arena_strdup(ar, sc->id);
    out->namespace_ = ag_arena_strdup(ar, sc->ns);
    out->cron = ag_arena_strdup(ar, sc->cron_text);
    out->spec = rpc_pb_unpack_bytes(sc->spec_bin, sc->spec_len,
                                    &agentry__v1__agent_spec__descriptor, ar, NULL);
    out->input = ag_arena_strdup(ar, sc->input);
    out->missed = ag_arena_strdup(ar, sc->missed);
    out->paused = sc->paused;
    out->created_unix_nano = sc->created_ns;
    out->next_fire_unix_nano = sc->paused ? 0 : sc->next_ns;
    out->last_fire_unix_nano = sc->last_ns;
    out->last_agent_id = ag_arena_strdup(ar, sc->last_agent);
    out->fires = sc->fires;
    out->request_id = ag_arena_strdup(ar, sc->request_id);
}

/* --- the schedule thread ---------------------------------------------------------------------- */

static void advance_done(struct hub_store_write *w, int rc, const struct ag_err *err);

/* The thread's ADVANCE: the slots up to now are dealt with. Lock held; the write's own failure
 * is handled by advance_done. */
static void advance_submit(struct hub_schedules *s, struct hub_schedule *sc, int64_t last_ns,
                           const char *agent, uint64_t fires, int64_t next_ns)
{
    snprintf(sc->adv_agent, sizeof(sc->adv_agent), "%s", agent);
    sc->op = (struct hub_store_op){.type = HUB_STORE_SCHEDULE_ADVANCE};
    sc->op.u.schedule = (struct hub_store_schedule){.id = sc->id,
                                                    .last_fire_ns = last_ns,
                                                    .last_agent_id = sc->adv_agent,
                                                    .fires = fires,
                                                    .next_fire_ns = next_ns};
    sc->w = (struct hub_store_write){.ops = &sc->op, .nops = 1, .done = advance_done, .arg = sc};
    struct ag_err err = AG_ERR_INIT;
    if (hub_store_submit(s->h->store, &sc->w, &err) != 0) {
        ag_log_warn("schedule.write_failed", "schedule=%s code=%s err=%s", sc->id,
                    ag_code_name(err.code), ag_log_q(err.msg));
        sc->busy = false;
        sc->retry_ns = ag_now_unix_ns() + SCHEDULE_RETRY_NS;
        unref_locked(sc);
        pthread_cond_signal(&s->cv);
    }
}

static void advance_done(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct hub_schedule *sc = w->arg;
    struct hub_schedules *s = sc->owner;
    pthread_mutex_lock(&s->mu);
    const struct hub_store_schedule *r = &sc->op.u.schedule;
    if (rc == 0) {
        sc->last_ns = r->last_fire_ns;
        snprintf(sc->last_agent, sizeof(sc->last_agent), "%s", r->last_agent_id);
        sc->fires = r->fires;
        if (!sc->paused)
            sc->next_ns = r->next_fire_ns;
    } else if (err->code != AG_NOT_FOUND) { /* NOT_FOUND: deleted meanwhile */
        ag_log_warn("schedule.write_failed", "schedule=%s code=%s err=%s", sc->id,
                    ag_code_name(err->code), ag_log_q(err->msg));
        sc->retry_ns = ag_now_unix_ns() + SCHEDULE_RETRY_NS;
    }
    sc->busy = false;
    unref_locked(sc);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The slot's spawn answered (hub_actor_done_fn): record the fire. */
static void fire_spawned(void *arg, const struct hub_reply *r, const struct ag_err *err)
{
    struct hub_schedule *sc = arg;
    struct hub_schedules *s = sc->owner;
    if (!r) {
        ag_log_warn("schedule.fire_failed", "schedule=%s slot=%" PRId64 " code=%s err=%s", sc->id,
                    sc->slot_s, ag_code_name(err->code), ag_log_q(err->msg));
        pthread_mutex_lock(&s->mu);
        sc->busy = false;
        sc->retry_ns = ag_now_unix_ns() + SCHEDULE_RETRY_NS;
        unref_locked(sc);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    /* existing: a hub fired this slot before and stopped before it recorded so. */
    ag_log_info("schedule.fired", "schedule=%s slot=%" PRId64 " agent=%s existing=%s", sc->id,
                sc->slot_s, r->agent_id, r->existing ? "true" : "false");
    pthread_mutex_lock(&s->mu); /* the next slot may have come already: it fires next */
    advance_submit(s, sc, sc->slot_s * NS_PER_S, r->agent_id, sc->fires + 1,
                   next_after(sc, sc->slot_s));
    pthread_mutex_unlock(&s->mu);
}

/* What is due for sc at now_s (its next slot has come): the slot to fire, or 0 to skip to the
 * first slot after *skip_after_s. Due slots fire one by one, oldest first, so a hub a little
 * behind catches up on each; missed ones (passed while no hub ran, or reached more than
 * HUB_SCHEDULE_GRACE_S late) follow the policy. Lock held. */
static int64_t due_slot(struct hub_schedule *sc, int64_t now_s, int64_t *skip_after_s)
{
    int64_t next_s = sc->next_ns / NS_PER_S;
    int64_t until = sc->missed_until_s, late = now_s - HUB_SCHEDULE_GRACE_S - 1;
    sc->missed_until_s = 0;
    if (late > until)
        until = late;
    int64_t last;
    if (next_s > until || !ag_cron_prev(&sc->cron, until, &last))
        return next_s; /* on time */
    ag_log_info("schedule.missed", "schedule=%s from=%" PRId64 " to=%" PRId64 " missed=%s", sc->id,
                next_s, last, sc->missed);
    *skip_after_s = until;
    return catch_up(sc) ? last : 0;
}

/* Fire sc's slot (outside the lock): the spawn dedups by the slot's request id, which a
 * request id that exists only in the store needs held in memory to see. */
static void fire(struct hub_schedules *s, struct hub_schedule *sc)
{
    struct hub *h = s->h;
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *held = hub_loader_get_by_request(h, sc->ns, sc->rid, &err);
    if (err.code != AG_OK) {
        fire_spawned(sc, NULL, &err);
        return;
    }
    hub_actor_spawn_notify(h, sc->spawn_spec, sc->input, sc->ns, sc->rid, fire_spawned, sc);
    hub_agents_unpin(&h->agents, held);
}

/* Take what is due now (busy, with the thread's reference), at most max; *wait_ms: how long
 * to sleep if nothing is. Lock held. */
static size_t take_due(struct hub_schedules *s, struct hub_schedule **out, size_t max,
                       int64_t *wait_ms)
{
    int64_t now = ag_now_unix_ns(), soonest = now + SCHEDULE_MAX_SLEEP_MS * (int64_t)1000000;
    size_t k = 0;
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &s->all)
    {
        struct hub_schedule *sc = AG_LIST_ENTRY(pos, struct hub_schedule, link);
        if (sc->deleted || sc->paused || sc->busy || !sc->next_ns)
            continue;
        int64_t at = sc->next_ns > sc->retry_ns ? sc->next_ns : sc->retry_ns;
        if (at > now || k == max) {
            soonest = at < soonest ? at : soonest;
            continue;
        }
        sc->busy = true;
        sc->refs++;
        int64_t skip_after_s = 0;
        sc->slot_s = due_slot(sc, now / NS_PER_S, &skip_after_s);
        if (sc->slot_s) {
            snprintf(sc->rid, sizeof(sc->rid), "schedule/%s/%" PRId64, sc->id, sc->slot_s);
            out[k++] = sc;
        } else {
            advance_submit(s, sc, sc->last_ns, sc->last_agent, sc->fires,
                           next_after(sc, skip_after_s));
        }
    }
    *wait_ms = (soonest - now) / 1000000 + 1; /* past the slot, never just before it */
    return k;
}

static void *schedule_main(void *arg)
{
    struct hub_schedules *s = arg;
    struct hub_schedule *due[SCHEDULE_ROUND];
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int64_t wait_ms;
        size_t k = take_due(s, due, SCHEDULE_ROUND, &wait_ms);
        if (k == 0) {
            ag_cond_wait_until(&s->cv, &s->mu, ag_deadline_in_ms(wait_ms));
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < k; i++)
            fire(s, due[i]);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* --- lifecycle -------------------------------------------------------------------------------- */

struct hub_schedules *hub_schedules_new(struct hub *h)
{
    struct hub_schedules *s = ag_xcalloc(1, sizeof(*s));
    s->h = h;
    pthread_mutex_init(&s->mu, NULL);
    ag_cond_init_mono(&s->cv);
    ag_list_init(&s->all);
    ag_list_init(&s->creating);
    ag_map_init(&s->by_id);
    return s;
}

static int load_row(void *arg, const struct hub_store_schedule *r, struct ag_err *err)
{
    struct hub_schedules *s = arg;
    struct hub_schedule *sc = schedule_new(r, err);
    if (!sc)
        return -1;
    int64_t now = ag_now_unix_ns();
    if (!sc->paused && sc->next_ns && sc->next_ns <= now)
        sc->missed_until_s = now / NS_PER_S;
    table_add(s, sc);
    return 0;
}

static int found_agent(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                       struct ag_err *err)
{
    snprintf(arg, AG_ID_LEN + 1, "%s", row->id);
    return 0;
}

/* A schedule whose stored next slot passed may have fired it just before the previous hub
 * stopped, without recording so: the slot's agent says. Counted as fired (the next ADVANCE
 * stores it). */
static int recount_fired(struct hub_schedules *s, struct hub_schedule *sc, struct ag_err *err)
{
    char rid[96], agent[AG_ID_LEN + 1] = "";
    int64_t slot = sc->next_ns / NS_PER_S;
    snprintf(rid, sizeof(rid), "schedule/%s/%" PRId64, sc->id, slot);
    struct hub_store_agents_query q = {
        .kind = HUB_STORE_AGENTS_REQUEST, .key = rid, .namespace = sc->ns};
    if (hub_store_select_agents(s->h->store, &q, found_agent, agent, err) != 0)
        return -1;
    if (agent[0] && slot * NS_PER_S > sc->last_ns) {
        sc->last_ns = slot * NS_PER_S;
        snprintf(sc->last_agent, sizeof(sc->last_agent), "%s", agent);
        sc->fires++;
    }
    return 0;
}

int hub_schedules_load(struct hub_schedules *s, struct ag_err *err)
{
    pthread_mutex_lock(&s->mu);
    int rc = hub_store_select_schedules(s->h->store, load_row, s, err);
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &s->all)
    {
        struct hub_schedule *sc = AG_LIST_ENTRY(pos, struct hub_schedule, link);
        if (rc == 0 && sc->missed_until_s)
            rc = recount_fired(s, sc, err);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0)
        ag_log_info("schedule.loaded", "schedules=%zu", s->n);
    return rc;
}

void hub_schedules_start(struct hub_schedules *s)
{
    ag_xthread_create(&s->thread, schedule_main, s, "schedules");
    s->started = true;
}

void hub_schedules_stop(struct hub_schedules *s)
{
    if (!s || !s->started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = false;
}

void hub_schedules_free(struct hub_schedules *s)
{
    if (!s)
        return;
    hub_schedules_stop(s);
    while (!ag_list_empty(&s->all)) {
        struct ag_list *first = ag_list_first(&s->all);
        ag_list_remove(first);
        schedule_free(AG_LIST_ENTRY(first, struct hub_schedule, link));
    }
    /* s->creating is empty: the store, closed before, answered every write. */
    ag_map_release(&s->by_id);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* --- reads ------------------------------------------------------------------------------------ */

/* The schedule id names, if the caller sees it; NULL otherwise. Lock held. */
static struct hub_schedule *find(struct hub_schedules *s, const char *id,
                                 hub_schedule_sees_fn *sees, void *sees_arg)
{
    struct hub_schedule *sc = id && *id ? ag_map_get(&s->by_id, id) : NULL;
    return sc && sees(sees_arg, sc->ns) ? sc : NULL;
}

static int not_found(const char *id, struct ag_err *err)
{
    return ag_err_set(err, AG_NOT_FOUND, "no schedule with id '%.64s'", id ? id : "");
}

int hub_schedule_get(struct hub_schedules *s, const char *id, hub_schedule_sees_fn *sees,
                     void *sees_arg, struct ag_arena *ar, Agentry__V1__Schedule *out,
                     struct ag_err *err)
{
    pthread_mutex_lock(&s->mu);
    struct hub_schedule *sc = find(s, id, sees, sees_arg);
    if (sc)
        fill_pb(sc, ar, out);
    pthread_mutex_unlock(&s->mu);
    return sc ? 0 : not_found(id, err);
}

void hub_schedule_list(struct hub_schedules *s, const char *ns, hub_schedule_sees_fn *sees,
                       void *sees_arg, struct ag_arena *ar, Agentry__V1__ListSchedulesResponse *out)
{
    pthread_mutex_lock(&s->mu);
    out->schedules = ag_arena_alloc(ar, (s->n ? s->n : 1) * sizeof(*out->schedules));
    out->n_schedules = 0;
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &s->all)
    {
        struct hub_schedule *sc = AG_LIST_ENTRY(pos, struct hub_schedule, link);
        if (sc->deleted || (ns && *ns && strcmp(ns, sc->ns) != 0) || !sees(sees_arg, sc->ns))
            continue;
        Agentry__V1__Schedule *m = ag_arena_alloc(ar, sizeof(*m));
        fill_pb(sc, ar, m);
        out->schedules[out->n_schedules++] = m;
    }
    pthread_mutex_unlock(&s->mu);
}

/* --- create ----------------------------------------------------------------------------------- */

/* The schedule of request id rid in namespace ns, NULL if none. Lock held. */
static struct hub_schedule *find_request(struct hub_schedules *s, const char *ns, const char *rid)
{
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &s->all)
    {
        struct hub_schedule *sc = AG_LIST_ENTRY(pos, struct hub_schedule, link);
        if (!sc->deleted && *sc->request_id && strcmp(sc->request_id, rid) == 0 &&
            strcmp(sc->ns, ns) == 0)
            return sc;
    }
    return NULL;
}

/* RESOURCE_EXHAUSTED if one more schedule in ns would pass a limit. Lock held. */
static int check_limits(struct hub_schedules *s, const char *ns, struct ag_err *err)
{
    size_t in_ns = 0, pending = 0;
    struct ag_list *pos;
    AG_LIST_FOREACH(pos, &s->all)
    {
        struct hub_schedule *sc = AG_LIST_ENTRY(pos, struct hub_schedule, link);
        in_ns += !sc->deleted && strcmp(sc->ns, ns) == 0;
    }
    AG_LIST_FOREACH(pos, &s->creating)
    {
        struct create_req *q = AG_LIST_ENTRY(pos, struct create_req, link);
        in_ns += strcmp(q->sc->ns, ns) == 0;
        pending++;
    }
    if (s->n + pending >= HUB_SCHEDULES_MAX)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "the hub holds %d schedules, its limit; delete some first",
                          HUB_SCHEDULES_MAX);
    if (in_ns >= HUB_SCHEDULES_MAX_PER_NS)
        return ag_err_set(err, AG_RESOURCE_EXHAUSTED,
                          "namespace '%s' has %d schedules, the limit; delete some first", ns,
                          HUB_SCHEDULES_MAX_PER_NS);
    return 0;
}

static void create_done(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct create_req *q = w->arg;
    struct hub_schedules *s = q->s;
    Agentry__V1__Schedule out;
    struct ag_err e = AG_ERR_INIT;
    pthread_mutex_lock(&s->mu);
    ag_list_remove(&q->link);
    struct hub_schedule *sc = q->sc, *found = NULL;
    if (rc == 0) {
        table_add(s, sc);
        fill_pb(sc, q->ar, &out);
        pthread_cond_signal(&s->cv);
    } else if (err->code == AG_ALREADY_EXISTS && *sc->request_id &&
               (found = find_request(s, sc->ns, sc->request_id))) {
        fill_pb(found, q->ar, &out); /* a concurrent create with this request id won */
    } else {
        e = *err;
        if (e.code != AG_UNAVAILABLE && e.code != AG_RESOURCE_EXHAUSTED)
            ag_err_set(&e, AG_INTERNAL, "the hub's store refused the schedule (%s: %s)",
                       ag_code_name(err->code), err->msg);
    }
    if (rc == 0) /* under the lock: a delete may free it right after */
        ag_log_info("schedule.created", "schedule=%s namespace=%s cron=%s missed=%s", sc->id,
                    sc->ns, ag_log_q(sc->cron_text), sc->missed);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        schedule_free(sc);
    q->fn(q->arg, e.code == AG_OK ? &out : NULL, &e);
    free(q);
}

/* The new schedule, its spec with the label checked as Spawn's; NULL with err if refused. */
static struct hub_schedule *create_build(const struct hub_schedule_new *n, struct ag_err *err)
{
    for (size_t i = 0; n->spec && i < n->spec->n_labels; i++)
        if (strcmp(n->spec->labels[i]->key, HUB_SCHEDULE_LABEL) == 0) {
            ag_err_set(err, AG_INVALID_ARGUMENT,
                       "spec.labels: '%s' is the hub's (it names the schedule); remove it",
                       HUB_SCHEDULE_LABEL);
            return NULL;
        }
    Agentry__V1__AgentSpec empty = AGENTRY__V1__AGENT_SPEC__INIT;
    const Agentry__V1__AgentSpec *spec = n->spec ? n->spec : &empty;
    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *bin = ag_xmalloc(len ? len : 1);
    protobuf_c_message_pack(&spec->base, bin);
    char id[AG_ID_LEN + 1];
    ag_id_new(id);
    int64_t now = ag_now_unix_ns();
    struct hub_store_schedule r = {.id = id,
                                   .namespace = n->ns,
                                   .request_id = n->request_id,
                                   .cron = n->cron,
                                   .spec = bin,
                                   .spec_len = len,
                                   .input = n->input,
                                   .missed = n->missed,
                                   .created_ns = now};
    struct hub_schedule *sc = schedule_new(&r, err);
    free(bin);
    if (!sc)
        return NULL;
    sc->next_ns = next_after(sc, now / NS_PER_S);
    if (hub_validate_spec(sc->spawn_spec, err) != 0) {
        schedule_free(sc);
        return NULL;
    }
    return sc;
}

void hub_schedule_create(struct hub_schedules *s, const struct hub_schedule_new *n,
                         struct ag_arena *ar, hub_schedule_done_fn *fn, void *arg)
{
    struct ag_err err = AG_ERR_INIT;
    const char *ns = n->ns && *n->ns ? n->ns : "default";
    struct hub_schedule *sc = create_build(n, &err);
    if (!sc) {
        fn(arg, NULL, &err);
        return;
    }
    pthread_mutex_lock(&s->mu);
    struct hub_schedule *known = n->request_id && *n->request_id
                                     ? find_request(s, ns, n->request_id)
                                     : NULL;
    if (known || check_limits(s, ns, &err) != 0) {
        Agentry__V1__Schedule out;
        if (known)
            fill_pb(known, ar, &out);
        pthread_mutex_unlock(&s->mu);
        schedule_free(sc);
        fn(arg, known ? &out : NULL, &err);
        return;
    }
    struct create_req *q = ag_xcalloc(1, sizeof(*q));
    *q = (struct create_req){.s = s, .sc = sc, .ar = ar, .fn = fn, .arg = arg};
    q->op.type = HUB_STORE_SCHEDULE_INSERT;
    q->op.u.schedule = (struct hub_store_schedule){.id = sc->id,
                                                   .namespace = sc->ns,
                                                   .request_id = sc->request_id,
                                                   .cron = sc->cron_text,
                                                   .spec = sc->spec_bin,
                                                   .spec_len = sc->spec_len,
                                                   .input = sc->input,
                                                   .missed = sc->missed,
                                                   .created_ns = sc->created_ns,
                                                   .next_fire_ns = sc->next_ns};
    q->w = (struct hub_store_write){.ops = &q->op, .nops = 1, .done = create_done, .arg = q};
    ag_list_insert_tail(&s->creating, &q->link);
    int rc = hub_store_submit(s->h->store, &q->w, &err);
    if (rc != 0)
        ag_list_remove(&q->link);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        schedule_free(sc);
        free(q);
        fn(arg, NULL, &err);
    }
}

/* --- pause, resume, delete -------------------------------------------------------------------- */

static void change_done(struct hub_store_write *w, int rc, const struct ag_err *err)
{
    struct change_req *q = w->arg;
    struct hub_schedules *s = q->s;
    struct hub_schedule *sc = q->sc;
    Agentry__V1__Schedule out;
    struct ag_err e = AG_ERR_INIT;
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && q->what == HUB_SCHEDULE_DELETE) {
        if (!sc->deleted) {
            sc->deleted = true;
            ag_map_del(&s->by_id, sc->id);
            s->n--;
            unref_locked(sc); /* the table's */
        }
    } else if (rc == 0) {
        sc->paused = q->op.u.schedule.paused;
        sc->next_ns = q->op.u.schedule.next_fire_ns;
        sc->retry_ns = 0;
        sc->missed_until_s = 0;
        fill_pb(sc, q->ar, &out);
    } else if (err->code == AG_NOT_FOUND) {
        not_found(sc->id, &e); /* deleted by another call meanwhile */
    } else {
        e = *err;
    }
    pthread_cond_signal(&s->cv);
    if (rc == 0)
        ag_log_info("schedule.changed", "schedule=%s change=%s", sc->id,
                    q->what == HUB_SCHEDULE_DELETE  ? "delete"
                    : q->what == HUB_SCHEDULE_PAUSE ? "pause"
                                                    : "resume");
    unref_locked(sc); /* the request's */
    pthread_mutex_unlock(&s->mu);
    q->fn(q->arg, rc == 0 && q->what != HUB_SCHEDULE_DELETE ? &out : NULL, &e);
    free(q);
}

void hub_schedule_change(struct hub_schedules *s, const char *id, enum hub_schedule_change what,
                         hub_schedule_sees_fn *sees, void *sees_arg, struct ag_arena *ar,
                         hub_schedule_done_fn *fn, void *arg)
{
    struct ag_err err = AG_ERR_INIT;
    pthread_mutex_lock(&s->mu);
    struct hub_schedule *sc = find(s, id, sees, sees_arg);
    bool pause = what == HUB_SCHEDULE_PAUSE;
    if (!sc || (what != HUB_SCHEDULE_DELETE && sc->paused == pause)) {
        Agentry__V1__Schedule out;
        if (sc) /* already so: idempotent */
            fill_pb(sc, ar, &out);
        pthread_mutex_unlock(&s->mu);
        if (!sc)
            not_found(id, &err);
        fn(arg, sc ? &out : NULL, &err);
        return;
    }
    struct change_req *q = ag_xcalloc(1, sizeof(*q));
    *q = (struct change_req){.s = s, .sc = sc, .what = what, .ar = ar, .fn = fn, .arg = arg};
    q->op.type = what == HUB_SCHEDULE_DELETE ? HUB_STORE_SCHEDULE_DELETE : HUB_STORE_SCHEDULE_PAUSE;
    q->op.u.schedule = (struct hub_store_schedule){.id = sc->id, .paused = pause};
    /* Resumed: from the next slot after now; what passed while paused is skipped. */
    if (what == HUB_SCHEDULE_RESUME)
        q->op.u.schedule.next_fire_ns = next_after(sc, ag_now_unix_ns() / NS_PER_S);
    q->w = (struct hub_store_write){.ops = &q->op, .nops = 1, .done = change_done, .arg = q};
    sc->refs++;
    int rc = hub_store_submit(s->h->store, &q->w, &err);
    if (rc != 0)
        unref_locked(sc);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        free(q);
        fn(arg, NULL, &err);
    }
}
