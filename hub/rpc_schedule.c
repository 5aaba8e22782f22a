/* hub/rpc_schedule.c - the schedule methods of AgentHub (hub.proto): each request is checked
 * here, then hub/schedule.c acts on it and answers once it is stored (reads answer at once).
 *
 * Authorization is the agents' rule: creating, pausing, resuming and deleting need what Spawn
 * and KillAgent need (the policy's role names the method; hub/policy.c), in a namespace the
 * caller may use; a schedule of a namespace it may not see is NOT_FOUND, as if absent.
 * Threads: CQ threads; answers may come on the store's completion thread. */
#include "hub/rpc_schedule.h"

#include <string.h>

#include "common/cron.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/authn.h"
#include "hub/hub_internal.h"
#include "hub/schedule.h"
#include "hub/validate.h"

#define MAX_REQUEST_ID 128

static bool refuse_if_closing(struct hub *h, struct rpc_call *c)
{
    if (!atomic_load(&h->closing))
        return false;
    rpc_call_finish(c, AG_UNAVAILABLE, "the hub is shutting down; retry on another hub or later");
    return true;
}

/* hub_schedule_sees_fn over the call's grant. */
static bool caller_sees(void *arg, const char *ns)
{
    return hub_authn_sees(arg, ns);
}

/* hub_schedule_done_fn: the schedule (or nothing, for a delete) or the error; drops the
 * reference taken for it. */
static void answered(void *arg, const Agentry__V1__Schedule *sc, const struct ag_err *err)
{
    struct rpc_call *c = arg;
    if (err && err->code != AG_OK) {
        rpc_call_fail(c, err);
    } else if (sc) {
        rpc_call_reply_take(c, rpc_pb_pack(&sc->base));
    } else {
        Agentry__V1__DeleteScheduleResponse r = AGENTRY__V1__DELETE_SCHEDULE_RESPONSE__INIT;
        rpc_call_reply_take(c, rpc_pb_pack(&r.base));
    }
    rpc_call_unref(c);
}

/* Everything CreateSchedule refuses before anything is stored. */
static int check_create(const Agentry__V1__Schedule *sc, const char *request_id, struct ag_err *err)
{
    struct ag_cron cron;
    if (hub_validate_namespace(sc->namespace_, err) != 0 ||
        ag_cron_parse(sc->cron, &cron, err) != 0 ||
        (sc->spec && hub_validate_spec(sc->spec, err) != 0) ||
        hub_validate_input(sc->input, false, err) != 0 ||
        (*sc->input && hub_validate_input_payload(sc->input, err) != 0))
        return -1;
    if (*sc->missed && strcmp(sc->missed, "skip") != 0 && strcmp(sc->missed, "catch_up_once") != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "missed '%.64s' is not a policy; use skip or catch_up_once", sc->missed);
    if (strlen(request_id) > MAX_REQUEST_ID)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "request_id is over %d bytes", MAX_REQUEST_ID);
    return hub_validate_utf8("request_id", request_id, err);
}

static void on_create(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__CreateScheduleRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__create_schedule_request__descriptor);
    if (!in || refuse_if_closing(h, c))
        return;
    Agentry__V1__Schedule empty = AGENTRY__V1__SCHEDULE__INIT;
    const Agentry__V1__Schedule *sc = in->schedule ? in->schedule : &empty;
    struct ag_err err = AG_ERR_INIT;
    if (check_create(sc, in->request_id, &err) != 0 ||
        hub_authn_may_create(c, sc->namespace_, &err) != 0) {
        rpc_call_fail(c, &err);
        return;
    }
    hub_authn_audit(c, NULL, *sc->namespace_ ? sc->namespace_ : "default", true, NULL);
    struct hub_schedule_new n = {.ns = sc->namespace_,
                                 .request_id = in->request_id,
                                 .cron = sc->cron,
                                 .spec = sc->spec,
                                 .input = sc->input,
                                 .missed = *sc->missed ? sc->missed : "skip"};
    rpc_call_ref(c); /* answered's */
    hub_schedule_create(h->schedules, &n, rpc_call_arena(c), answered, c);
}

static void on_list(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__ListSchedulesRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__list_schedules_request__descriptor);
    if (!in)
        return;
    struct ag_err err = AG_ERR_INIT;
    if (hub_validate_namespace(in->namespace_, &err) != 0 ||
        (*in->namespace_ && hub_authn_may_create(c, in->namespace_, &err) != 0)) {
        rpc_call_fail(c, &err);
        return;
    }
    Agentry__V1__ListSchedulesResponse out = AGENTRY__V1__LIST_SCHEDULES_RESPONSE__INIT;
    hub_schedule_list(h->schedules, in->namespace_, caller_sees, c, rpc_call_arena(c), &out);
    rpc_call_reply_take(c, rpc_pb_pack(&out.base));
}

static void on_get(struct rpc_call *c, grpc_byte_buffer *req)
{
    struct hub *h = rpc_call_user(c);
    Agentry__V1__GetScheduleRequest *in = rpc_call_unpack(
        c, req, &agentry__v1__get_schedule_request__descriptor);
    if (!in)
        return;
    Agentry__V1__Schedule out;
    struct ag_err err = AG_ERR_INIT;
    if (hub_schedule_get(h->schedules, in->schedule_id, caller_sees, c, rpc_call_arena(c), &out,
                         &err) != 0)
        rpc_call_fail(c, &err);
    else
        rpc_call_reply_take(c, rpc_pb_pack(&out.base));
}

/* Pause, resume and delete: three requests whose one field is schedule_id (hub.proto), read
 * through the descriptor. */
static void change(struct rpc_call *c, grpc_byte_buffer *req, const ProtobufCMessageDescriptor *d,
                   enum hub_schedule_change what)
{
    struct hub *h = rpc_call_user(c);
    char *in = rpc_call_unpack(c, req, d);
    if (!in || refuse_if_closing(h, c))
        return;
    const char *id = *(char **)(in + d->fields[0].offset);
    hub_authn_audit(c, NULL, NULL, true, NULL);
    rpc_call_ref(c); /* answered's */
    hub_schedule_change(h->schedules, id, what, caller_sees, c, rpc_call_arena(c), answered, c);
}

static void on_pause(struct rpc_call *c, grpc_byte_buffer *req)
{
    change(c, req, &agentry__v1__pause_schedule_request__descriptor, HUB_SCHEDULE_PAUSE);
}

static void on_resume(struct rpc_call *c, grpc_byte_buffer *req)
{
    change(c, req, &agentry__v1__resume_schedule_request__descriptor, HUB_SCHEDULE_RESUME);
}

static void on_delete(struct rpc_call *c, grpc_byte_buffer *req)
{
    change(c, req, &agentry__v1__delete_schedule_request__descriptor, HUB_SCHEDULE_DELETE);
}

const struct rpc_method hub_rpc_schedule_methods[] = {
    {.path = "/agentry.v1.AgentHub/CreateSchedule", .kind = RPC_UNARY, .on_call = on_create},
    {.path = "/agentry.v1.AgentHub/ListSchedules", .kind = RPC_UNARY, .on_call = on_list},
    {.path = "/agentry.v1.AgentHub/GetSchedule", .kind = RPC_UNARY, .on_call = on_get},
    {.path = "/agentry.v1.AgentHub/PauseSchedule", .kind = RPC_UNARY, .on_call = on_pause},
    {.path = "/agentry.v1.AgentHub/ResumeSchedule", .kind = RPC_UNARY, .on_call = on_resume},
    {.path = "/agentry.v1.AgentHub/DeleteSchedule", .kind = RPC_UNARY, .on_call = on_delete},
};
const size_t hub_rpc_schedule_nmethods = AG_ARRAY_SIZE(hub_rpc_schedule_methods);
