/* hub/team.c - sub-agents: the spawn_agent, send_agent and wait_agent hub tools, a parent's
 * wait, and how children's turn ends, waits and kills travel between agents (see team.h).
 *
 * The tools' rules: a child is spawned from one of the parent's templates, or from the parent's
 * own spec, with the overrides the call gives (tools only a subset of the parent's), validated
 * as Spawn validates, in the parent's namespace, with the request id "<parent>/<call id>": a
 * replayed call finds the child the first one made (Spawn's idempotency). Depth: the child's
 * depth from its root must not pass the smallest spec.limits.max_depth along its line; each
 * child's stored spec carries that smallest value down, so a parent only looks at its own. A
 * parent spawns at most spec.limits.max_children children in its life (counted from the store
 * the first time, then in memory). send_agent and wait_agent take only the caller's own children.
 *
 * The wait itself (which children, which are done, its result) is hub/team_wait.c.
 *
 * Answers from the actor's callbacks arrive with an agent's lock held: they go out from the
 * timer thread (hub_tool_reply is never called under an agent's lock). So do the steps that
 * read the store or lock other agents on behalf of a write that just committed. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timers.h"
#include "common/xalloc.h"
#include "hub/actor.h"
#include "hub/agent.h"
#include "hub/agent_table.h"
#include "hub/hub_internal.h"
#include "hub/hub_tool.h"
#include "hub/limits.h"
#include "hub/loader.h"
#include "hub/store.h"
#include "hub/team.h"
#include "hub/validate.h"

#define TEAM_DEFAULT_MAX_DEPTH 8
#define TEAM_DEFAULT_MAX_CHILDREN 1000
#define TEAM_MAX_WAIT 1000 /* children one wait_agent call may name */
#define TEAM_PAGE 256      /* children read per store page */

/* --- answering from the timer thread -------------------------------------------------------- */

struct deferred {
    struct hub_tool_req *r;
    char *output; /* owned */
    bool is_error;
};

static void deferred_fire(void *arg)
{
    struct deferred *d = arg;
    hub_tool_reply(d->r, d->output, d->is_error, false);
    free(d->output);
    free(d);
}

/* Answer r from the timer thread (the caller may hold an agent's lock); takes output. */
static void reply_later(struct hub *h, struct hub_tool_req *r, char *output, bool is_error)
{
    struct deferred *d = ag_xmalloc(sizeof(*d));
    d->r = r;
    d->output = output;
    d->is_error = is_error;
    ag_timers_add(h->timers, 0, deferred_fire, d);
}

/* --- shared by the tools -------------------------------------------------------------------- */

/* The agent id, pinned, if it is a child of r's agent; else NULL once r is answered. */
static struct hub_agent *own_child(struct hub_tool_req *r, const char *tool, const cJSON *id)
{
    struct ag_err err = AG_ERR_INIT;
    if (!cJSON_IsString(id)) {
        hub_tool_fail(r, "%s needs \"agent_id\": the id spawn_agent returned", tool);
        return NULL;
    }
    struct hub_agent *c = hub_loader_get(r->h, id->valuestring, &err);
    if (c && strcmp(c->parent_id, r->agent_id) == 0)
        return c;
    hub_agents_unpin(&r->h->agents, c);
    if (err.code != AG_OK && err.code != AG_NOT_FOUND && err.code != AG_INVALID_ARGUMENT)
        hub_tool_fail(r, "%s: %s", tool, err.msg);
    else
        hub_tool_fail(r,
                      "%s: agent '%.64s' is not a sub-agent of this agent; use an agent_id that "
                      "spawn_agent returned",
                      tool, id->valuestring);
    return NULL;
}

static cJSON *parse_args(struct hub_tool_req *r, const char *tool)
{
    cJSON *o = cJSON_Parse(r->args_json ? r->args_json : "{}");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        hub_tool_fail(r, "%s: the arguments must be a JSON object", tool);
        return NULL;
    }
    return o;
}

struct page_ctx {
    char (*ids)[AG_ID_LEN + 1];
    size_t n;
    int64_t last_ns;
};

static int page_row(void *arg, const struct hub_store_agent *row, uint64_t last_seq,
                    struct ag_err *err)
{
    (void)last_seq;
    (void)err;
    struct page_ctx *p = arg;
    snprintf(p->ids[p->n++], AG_ID_LEN + 1, "%s", row->id);
    p->last_ns = row->created_ns;
    return 0;
}

/* Calls fn(arg, id) for each child of parent in creation order, at most max (0: all); the count
 * visited, or -1 with err. Synchronous store reads: never on a CQ thread's hot path. */
static long for_children(struct hub *h, const char *parent, size_t max,
                         void (*fn)(void *arg, const char *id), void *arg, struct ag_err *err)
{
    char ids[TEAM_PAGE][AG_ID_LEN + 1];
    char after[AG_ID_LEN + 1] = "";
    int64_t after_ns = 0;
    size_t seen = 0;
    for (;;) {
        struct page_ctx p = {.ids = ids};
        struct hub_store_agents_query q = {.kind = HUB_STORE_AGENTS_PAGE,
                                           .parent_id = parent,
                                           .after_ns = after_ns,
                                           .after_id = after,
                                           .max = TEAM_PAGE};
        if (hub_store_select_agents(h->store, &q, page_row, &p, err) != 0)
            return -1;
        for (size_t i = 0; i < p.n && (!max || seen < max); i++, seen++)
            if (fn)
                fn(arg, ids[i]);
        if (p.n < TEAM_PAGE || (max && seen >= max))
            return (long)seen;
        after_ns = p.last_ns;
        snprintf(after, sizeof(after), "%s", ids[p.n - 1]);
    }
}

/* --- spawn_agent ---------------------------------------------------------------------------- */

struct kill_ctx {
    struct hub *h;
    char id[AG_ID_LEN + 1];
    char reason[64];
};

struct spawn_ctx {
    struct hub *h;
    struct hub_tool_req *r;
    struct hub_agent *parent; /* pinned */
    struct ag_arena ar;       /* the child's spec and input, until the answer */
    char *output;             /* owned: the answer, once the actor gave it */
    bool is_error, unreserve;
    char child_id[AG_ID_LEN + 1];
};

static uint32_t max_depth_of(const Agentry__V1__AgentSpec *s)
{
    return s->limits && s->limits->max_depth ? s->limits->max_depth : TEAM_DEFAULT_MAX_DEPTH;
}

static uint32_t max_children_of(const Agentry__V1__AgentSpec *s)
{
    return s->limits && s->limits->max_children ? s->limits->max_children
                                                : TEAM_DEFAULT_MAX_CHILDREN;
}

static void spawn_ctx_free(struct spawn_ctx *x)
{
    hub_agents_unpin(&x->h->agents, x->parent);
    ag_arena_release(&x->ar);
    free(x->output);
    free(x);
}

static void kill_one(void *arg, const char *child);

/* Timer thread: answer, and give back the reservation of a spawn that made no new child. A
 * child stored after its parent was killed (the kill's cascade read the children before) is
 * killed now. */
static void spawn_finish(void *arg)
{
    struct spawn_ctx *x = arg;
    pthread_mutex_lock(&x->parent->lock);
    if (x->unreserve && x->parent->nchildren > 0)
        x->parent->nchildren--;
    bool orphan = !x->is_error &&
                  x->parent->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED;
    pthread_mutex_unlock(&x->parent->lock);
    if (orphan && !atomic_load(&x->h->closing)) {
        struct kill_ctx k = {.h = x->h};
        snprintf(k.reason, sizeof(k.reason), "parent %s was killed", x->parent->id);
        kill_one(&k, x->child_id);
    }
    hub_tool_reply(x->r, x->output, x->is_error, false);
    spawn_ctx_free(x);
}

/* The actor's answer, with the child's lock held: the rest happens on the timer thread. */
static void child_spawned(void *arg, const struct hub_reply *rep, const struct ag_err *err)
{
    struct spawn_ctx *x = arg;
    if (err) {
        x->output = ag_xasprintf("spawn_agent failed: %s", err->msg);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "agent_id", rep->agent_id);
        cJSON_AddBoolToObject(o, "existing", rep->existing);
        x->output = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        snprintf(x->child_id, sizeof(x->child_id), "%s", rep->agent_id);
    }
    x->is_error = err != NULL;
    x->unreserve = err || rep->existing;
    ag_timers_add(x->h->timers, 0, spawn_finish, x);
}

/* Reserve a child of r's agent under its max_children: -1 once r is answered. */
static int reserve_child(struct hub_tool_req *r, struct hub_agent *p)
{
    uint32_t max = max_children_of(p->spec);
    pthread_mutex_lock(&p->lock);
    bool counted = p->nchildren >= 0;
    pthread_mutex_unlock(&p->lock);
    if (!counted) {
        struct ag_err err = AG_ERR_INIT;
        long n = for_children(r->h, p->id, (size_t)max + 1, NULL, NULL, &err);
        if (n < 0) {
            hub_tool_fail(r, "spawn_agent: cannot count this agent's sub-agents: %s", err.msg);
            return -1;
        }
        pthread_mutex_lock(&p->lock);
        if (p->nchildren < 0)
            p->nchildren = n;
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_lock(&p->lock);
    bool room = p->nchildren < (int64_t)max;
    if (room)
        p->nchildren++;
    pthread_mutex_unlock(&p->lock);
    if (!room)
        hub_tool_fail(r,
                      "spawn_agent refused: this agent has spawned %u sub-agents, its limit "
                      "(spec.limits.max_children); reuse one with send_agent or do the work "
                      "itself",
                      max);
    return room ? 0 : -1;
}

static int set_string(const cJSON *args, const char *key, char **field, struct ag_arena *ar)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v)
        return 0;
    if (!cJSON_IsString(v))
        return -1;
    *field = ag_arena_strdup(ar, v->valuestring);
    return 0;
}

static bool parent_has_tool(const Agentry__V1__AgentSpec *p, const char *tool)
{
    for (size_t i = 0; i < p->n_tools; i++)
        if (strcmp(p->tools[i], tool) == 0)
            return true;
    return false;
}

/* "tools": a subset of the parent's. -1 with err. */
static int set_tools(const cJSON *args, const Agentry__V1__AgentSpec *parent,
                     Agentry__V1__AgentSpec *s, struct ag_arena *ar, struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "tools");
    if (!v)
        return 0;
    if (!cJSON_IsArray(v))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "\"tools\" must be an array of tool names");
    size_t n = (size_t)cJSON_GetArraySize(v);
    s->tools = ag_arena_alloc(ar, (n ? n : 1) * sizeof(*s->tools));
    s->n_tools = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !parent_has_tool(parent, e->valuestring))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "\"tools\" may name only tools this agent has; '%.64s' is not one",
                              cJSON_IsString(e) ? e->valuestring : "?");
        s->tools[s->n_tools++] = ag_arena_strdup(ar, e->valuestring);
    }
    return 0;
}

static int set_labels(const cJSON *args, Agentry__V1__AgentSpec *s, struct ag_arena *ar,
                      struct ag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "labels");
    if (!v)
        return 0;
    if (!cJSON_IsObject(v))
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "\"labels\" must be an object of strings, like {\"role\": \"worker\"}");
    size_t n = (size_t)cJSON_GetArraySize(v);
    s->labels = ag_arena_alloc(ar, (n ? n : 1) * sizeof(*s->labels));
    s->n_labels = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            return ag_err_set(err, AG_INVALID_ARGUMENT, "label '%.64s' must be a string",
                              e->string);
        Agentry__V1__AgentSpec__LabelsEntry *l = ag_arena_alloc(ar, sizeof(*l));
        agentry__v1__agent_spec__labels_entry__init(l);
        l->key = ag_arena_strdup(ar, e->string);
        l->value = ag_arena_strdup(ar, e->valuestring);
        s->labels[s->n_labels++] = l;
    }
    return 0;
}

/* The child's spec (in ar): the template named, or the parent's spec, with the call's
 * overrides, and the line's depth limit carried down. -1 with err. */
static int child_spec(const cJSON *args, const struct hub_agent *parent, struct ag_arena *ar,
                      Agentry__V1__AgentSpec *s, struct ag_err *err)
{
    const Agentry__V1__AgentSpec *ps = parent->spec;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(args, "template");
    *s = *ps;
    if (t) {
        const Agentry__V1__AgentSpec *found = NULL;
        for (size_t i = 0; cJSON_IsString(t) && i < ps->n_templates; i++)
            if (strcmp(ps->templates[i]->key, t->valuestring) == 0)
                found = ps->templates[i]->value;
        if (!found)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "\"template\" names no template of this agent's spec "
                              "(spec.templates has %zu)",
                              ps->n_templates);
        *s = *found;
        s->n_templates = 0; /* a child's children come from the child's own spec */
        s->templates = NULL;
    }
    if (set_string(args, "name", &s->name, ar) != 0 ||
        set_string(args, "system_prompt", &s->system_prompt, ar) != 0 ||
        set_string(args, "model", &s->model, ar) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "\"name\", \"system_prompt\" and \"model\" must be strings");
    if (set_tools(args, ps, s, ar, err) != 0 || set_labels(args, s, ar, err) != 0)
        return -1;
    Agentry__V1__Limits *l = ag_arena_alloc(ar, sizeof(*l));
    if (s->limits)
        *l = *s->limits;
    else
        agentry__v1__limits__init(l);
    uint32_t line = max_depth_of(ps), own = max_depth_of(s);
    l->max_depth = own < line ? own : line;
    s->limits = l;
    return 0;
}

void hub_team_spawn_agent(struct hub_tool_req *r)
{
    struct hub *h = r->h;
    struct hub_agent *p = r->agent;
    cJSON *args = parse_args(r, "spawn_agent");
    if (!args)
        return;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(args, "input");
    uint32_t limit = max_depth_of(p->spec);
    if (!cJSON_IsString(input) || !*input->valuestring) {
        hub_tool_fail(r, "spawn_agent needs \"input\": the sub-agent's first message");
        goto out;
    }
    if (p->depth + 1 > limit) {
        hub_tool_fail(r,
                      "spawn_agent refused: a sub-agent of this agent would be at depth %u, past "
                      "the limit of %u (spec.limits.max_depth along its line); do the work in "
                      "this agent instead",
                      p->depth + 1, limit);
        goto out;
    }
    struct spawn_ctx *x = ag_xcalloc(1, sizeof(*x));
    x->h = h;
    x->r = r;
    x->parent = p;
    hub_agents_pin(&h->agents, p);
    ag_arena_init(&x->ar, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__AgentSpec spec;
    const char *rid = ag_arena_printf(&x->ar, "%s/%s", p->id, r->call_id);
    const char *text = ag_arena_strdup(&x->ar, input->valuestring);
    if (child_spec(args, p, &x->ar, &spec, &err) != 0 ||
        hub_validate_spawn(h, &spec, text, true, p->ns, rid, &err) != 0) {
        hub_tool_fail(r, "spawn_agent: %s", err.msg);
        spawn_ctx_free(x);
        goto out;
    }
    /* A replay finds the child the first call made, in memory or in the store. */
    struct hub_agent *held = hub_loader_get_by_request(h, p->ns, rid, &err);
    if (err.code != AG_OK) {
        hub_tool_fail(r, "spawn_agent: %s", err.msg);
        spawn_ctx_free(x);
        goto out;
    }
    if (held) {
        /* Answered as existing, which gives a reservation back: take one to give. */
        hub_agents_unpin(&h->agents, held);
        pthread_mutex_lock(&p->lock);
        if (p->nchildren >= 0)
            p->nchildren++;
        pthread_mutex_unlock(&p->lock);
    } else if (reserve_child(r, p) != 0) {
        spawn_ctx_free(x);
        goto out;
    }
    struct hub_actor_child c = {.parent_id = p->id,
                                .depth = p->depth + 1,
                                .by = ag_arena_printf(&x->ar, "agent/%s", p->id),
                                .done = child_spawned,
                                .arg = x};
    hub_actor_spawn_child(h, &c, &spec, text, p->ns, rid);
out:
    cJSON_Delete(args);
}

/* --- send_agent ----------------------------------------------------------------------------- */

struct send_ctx {
    struct hub *h;
    struct hub_tool_req *r;
};

static void send_done(void *arg, const struct hub_reply *rep, const struct ag_err *err)
{
    struct send_ctx *x = arg;
    char *out = err ? ag_xasprintf("send_agent failed: %s", err->msg)
                    : ag_xasprintf("{\"seq\":%" PRIu64 "}", rep->seq);
    reply_later(x->h, x->r, out, err != NULL);
    free(x);
}

void hub_team_send_agent(struct hub_tool_req *r)
{
    cJSON *args = parse_args(r, "send_agent");
    if (!args)
        return;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(args, "text");
    struct ag_err err = AG_ERR_INIT;
    if (!cJSON_IsString(text) || hub_validate_input(text->valuestring, true, &err) != 0 ||
        hub_validate_input_payload(text->valuestring, &err) != 0) {
        hub_tool_fail(r, "send_agent needs \"text\", the message: %s",
                      err.code != AG_OK ? err.msg : "a string");
        goto out;
    }
    struct hub_agent *c = own_child(r, "send_agent",
                                    cJSON_GetObjectItemCaseSensitive(args, "agent_id"));
    if (!c)
        goto out;
    struct send_ctx *x = ag_xmalloc(sizeof(*x));
    x->h = r->h;
    x->r = r;
    char by[AG_ID_LEN + 8];
    snprintf(by, sizeof(by), "agent/%s", r->agent_id);
    hub_actor_post_input_from(r->h, c, text->valuestring, by, send_done, x);
    hub_agents_unpin(&r->h->agents, c);
out:
    cJSON_Delete(args);
}

/* --- wait_agent ----------------------------------------------------------------------------- */

/* Where a child stands, for wait_agent (its lock taken here). */
static void child_end_now(struct hub_agent *c, struct hub_team_end *e, char **text)
{
    pthread_mutex_lock(&c->lock);
    int s = c->st.state;
    e->child_id = c->id;
    e->state = s;
    e->seq = c->last_seq;
    e->settled = (s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ||
                  s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_YIELDED ||
                  s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED ||
                  s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED) &&
                 (s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_KILLED ||
                  !hub_agent_input_waiting(c, c->st.input_seq));
    const char *t = s == AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE ? c->st.last_output
                                                                    : c->st.last_error;
    *text = ag_xstrdup(t ? t : "");
    pthread_mutex_unlock(&c->lock);
    e->text = *text;
}

void hub_team_wait_agent(struct hub_tool_req *r)
{
    cJSON *args = parse_args(r, "wait_agent");
    if (!args)
        return;
    const cJSON *agents = cJSON_GetObjectItemCaseSensitive(args, "agents");
    int n = cJSON_GetArraySize(agents);
    if (!cJSON_IsArray(agents) || n < 1 || n > TEAM_MAX_WAIT) {
        hub_tool_fail(r, "wait_agent needs \"agents\": 1..%d ids that spawn_agent returned",
                      TEAM_MAX_WAIT);
        cJSON_Delete(args);
        return;
    }
    const char **ids = ag_xcalloc((size_t)n, sizeof(*ids));
    char **texts = ag_xcalloc((size_t)n, sizeof(*texts));
    int *states = ag_xcalloc((size_t)n, sizeof(*states));
    bool all = true, failed = false;
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, agents)
    {
        struct hub_agent *c = own_child(r, "wait_agent", e);
        if (!c) {
            failed = true;
            break;
        }
        struct hub_team_end end;
        child_end_now(c, &end, &texts[k]);
        ids[k] = e->valuestring;
        states[k++] = end.state;
        all = all && end.settled;
        hub_agents_unpin(&r->h->agents, c);
    }
    if (!failed && all) {
        char *out = hub_team_answers_json(k, ids, states, (const char *const *)texts);
        hub_tool_reply(r, out ? out : "[]", false, false);
        free(out);
    } else if (!failed) {
        /* The node lets go with WAITING, naming these; the hub stores the answer later. */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "agents", cJSON_Duplicate(agents, true));
        char *out = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        hub_tool_reply(r, out ? out : "{}", false, true);
        free(out);
    }
    for (size_t i = 0; i < k; i++)
        free(texts[i]);
    free(ids);
    free(texts);
    free(states);
    cJSON_Delete(args);
}

/* --- between agents, after a write -------------------------------------------------------- */

struct child_msg {
    struct hub *h;
    char parent[AG_ID_LEN + 1];
    char child[AG_ID_LEN + 1];
    struct hub_team_end e;
    char *text; /* owned */
};

static void child_msg_fire(void *arg)
{
    struct child_msg *m = arg;
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *p = atomic_load(&m->h->closing) ? NULL
                                                      : hub_loader_get(m->h, m->parent, &err);
    if (p) {
        hub_actor_post_child(m->h, p, &m->e, true);
        hub_agents_unpin(&m->h->agents, p);
    } else if (err.code != AG_OK) {
        ag_log_warn("team.child_unreported", "parent=%s child=%s err=%s", m->parent, m->child,
                    ag_log_q(err.msg));
    }
    free(m->text);
    free(m);
}

void hub_team_child_ended(struct hub *h, const char *parent_id, const struct hub_team_end *e)
{
    struct hub_agent *p = hub_agents_find(&h->agents, parent_id);
    if (p) { /* the usual case: a parent at work or waiting is in memory */
        hub_actor_post_child(h, p, e, true);
        hub_agents_unpin(&h->agents, p);
        return;
    }
    struct child_msg *m = ag_xcalloc(1, sizeof(*m));
    m->h = h;
    snprintf(m->parent, sizeof(m->parent), "%s", parent_id);
    snprintf(m->child, sizeof(m->child), "%s", e->child_id);
    m->e = *e;
    m->text = ag_xstrdup(e->text ? e->text : "");
    m->e.text = m->text;
    m->e.child_id = m->child;
    ag_timers_add(h->timers, 0, child_msg_fire, m);
}

struct check_ctx {
    struct hub *h;
    struct hub_agent *parent; /* pinned */
};

static void check_fire(void *arg)
{
    struct check_ctx *x = arg;
    struct hub *h = x->h;
    struct hub_agent *p = x->parent;
    pthread_mutex_lock(&p->lock);
    size_t n = hub_team_wait_left(p->wait);
    char(*ids)[AG_ID_LEN + 1] = ag_xcalloc(n ? n : 1, sizeof(*ids));
    hub_team_wait_pending(p->wait, ids, n);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < n && !atomic_load(&h->closing); i++) {
        struct ag_err err = AG_ERR_INIT;
        struct hub_agent *c = hub_loader_get(h, ids[i], &err);
        if (!c)
            continue; /* a child that does not exist never answers: its parent was told no */
        struct hub_team_end e;
        char *text;
        child_end_now(c, &e, &text);
        if (e.settled)
            hub_actor_post_child(h, p, &e, false);
        free(text);
        hub_agents_unpin(&h->agents, c);
    }
    free(ids);
    hub_agents_unpin(&h->agents, p);
    free(x);
}

void hub_team_check_wait(struct hub *h, struct hub_agent *parent)
{
    struct check_ctx *x = ag_xmalloc(sizeof(*x));
    x->h = h;
    x->parent = parent;
    hub_agents_pin(&h->agents, parent);
    ag_timers_add(h->timers, 0, check_fire, x);
}

static void kill_one(void *arg, const char *child)
{
    struct kill_ctx *x = arg;
    struct ag_err err = AG_ERR_INIT;
    struct hub_agent *c = hub_loader_get(x->h, child, &err);
    if (!c)
        return;
    hub_actor_post_kill(x->h, c, NULL, x->reason);
    hub_agents_unpin(&x->h->agents, c);
}

static void kill_fire(void *arg)
{
    struct kill_ctx *x = arg;
    struct ag_err err = AG_ERR_INIT;
    if (!atomic_load(&x->h->closing) && for_children(x->h, x->id, 0, kill_one, x, &err) < 0)
        ag_log_warn("team.kill_children_failed", "agent=%s err=%s", x->id, ag_log_q(err.msg));
    free(x);
}

void hub_team_kill_children(struct hub *h, const char *id)
{
    struct kill_ctx *x = ag_xmalloc(sizeof(*x));
    x->h = h;
    snprintf(x->id, sizeof(x->id), "%s", id);
    snprintf(x->reason, sizeof(x->reason), "parent %s was killed", id);
    ag_timers_add(h->timers, 0, kill_fire, x);
}
