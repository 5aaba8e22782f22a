/* cmd/agentry/cmd_bench.c - 'agentry bench': load-test a hub with one RPC kind and report
 * throughput and latency percentiles (the engine is bench.c).
 *
 * Each --rpc is a row: how to build its request(s), how to judge a reply, and what to set up
 * first. --rpc send first spawns one idle agent per in-flight slot (through the engine itself,
 * one call per slot), so that sends spread over N agents, each with one send in flight.
 * Ctrl-C stops starting calls; the calls in flight finish and the results are printed.
 * One Ping comes first: a hub that cannot be reached is one error line and exit 1, not a run of
 * failed calls; a hub lost during the run ends it early (see bench.h), with the results so far. */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/bench.h"
#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"

#define BENCH_INVOKE_TIMEOUT_MS 60000
#define BENCH_MAX_PAYLOAD (4 * 1024 * 1024) /* gRPC's default receive limit on the hub */

static volatile sig_atomic_t bench_stop; /* the signal (SIGINT/SIGTERM): start no more calls */

static void on_signal(int sig)
{
    if (bench_stop)
        _exit(128 + sig); /* the second Ctrl-C: the user means it */
    bench_stop = sig;
}

static const struct ag_cmd_help bench_help = {
    "agentry bench [flags] --rpc ping|send|spawn|invoke",
    "Load-test a hub: keep --concurrency unary calls in flight (spread over --channels "
    "connections) for --duration or until --calls calls, then print calls, errors, successful "
    "calls per second and latency percentiles. ping: the transport baseline (--payload-bytes). "
    "send: SendMessage 'x' to one agent per slot, spawned first. spawn: Spawn an idle mock agent. "
    "invoke: Invoke a one-step mock agent (input 'final ok'). One Ping checks the hub first, "
    "and a hub that goes away ends the run early. Exits 1 if any call failed.",
    "agentry bench --rpc ping --concurrency 64 --duration 10s\n"
    "agentry bench --rpc invoke --calls 1000 --json",
};

struct bench_opts {
    const char *rpc;
    int64_t concurrency, channels, duration_ms, calls, payload_bytes;
};

struct bench_ctx {
    struct cli_client *c;
    struct bench_opts o;
    struct rpc_channel **chans;
    char **agent_ids; /* --rpc send: one per slot, owned */
};

/* --- requests and replies -------------------------------------------------------------------- */

static grpc_slice pack_slice(const ProtobufCMessage *m)
{
    grpc_slice s = grpc_slice_malloc(protobuf_c_message_get_packed_size(m));
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    return s;
}

static grpc_slice mock_spawn_request(const char *input, bool invoke)
{
    Agentry__V1__AgentSpec spec = AGENTRY__V1__AGENT_SPEC__INIT;
    spec.name = "bench";
    spec.model = "mock";
    if (invoke) {
        Agentry__V1__InvokeRequest req = AGENTRY__V1__INVOKE_REQUEST__INIT;
        req.spec = &spec;
        req.input = (char *)input;
        return pack_slice(&req.base);
    }
    Agentry__V1__SpawnRequest req = AGENTRY__V1__SPAWN_REQUEST__INIT;
    req.spec = &spec;
    req.input = (char *)input;
    return pack_slice(&req.base);
}

/* Setup for --rpc send: keep each new agent's id by slot. */
static int keep_agent_id(void *arg, size_t slot, grpc_byte_buffer *reply, struct ag_arena *arena,
                         struct ag_err *err)
{
    struct bench_ctx *b = arg;
    Agentry__V1__SpawnResponse *r = rpc_pb_unpack(reply, &agentry__v1__spawn_response__descriptor,
                                                  arena, err);
    if (!r)
        return -1;
    b->agent_ids[slot] = ag_xstrdup(r->agent_id);
    return 0;
}

/* --rpc invoke: a turn that did not end with an answer is an error, as for 'agentry invoke'. */
static int check_invoke(void *arg, size_t slot, grpc_byte_buffer *reply, struct ag_arena *arena,
                        struct ag_err *err)
{
    Agentry__V1__InvokeResponse *r = rpc_pb_unpack(reply, &agentry__v1__invoke_response__descriptor,
                                                   arena, err);
    if (!r)
        return -1;
    if (r->state != AGENTRY__V1__AGENT_STATE__AGENT_STATE_IDLE)
        return ag_err_set(err, AG_ABORTED, "agent '%s' ended its turn %s: %s", r->agent_id,
                          cli_print_state_name(r->state), *r->error ? r->error : "no reason");
    return 0;
}

/* Spawn one idle agent per slot; -1 with the first error if any spawn failed. */
static int spawn_send_agents(struct bench_ctx *b, const struct bench_cfg *base, struct ag_err *err)
{
    grpc_slice req = mock_spawn_request("", false);
    struct bench_cfg cfg = *base;
    cfg.method = CLI_HUB_METHOD("Spawn");
    cfg.duration_ms = 0;
    cfg.calls = cfg.concurrency; /* concurrency == calls: exactly one call per slot */
    cfg.reqs = &req;
    cfg.nreqs = 1;
    cfg.on_reply = keep_agent_id;
    cfg.arg = b;
    cfg.progress = false;
    struct bench_result res;
    bench_run(&cfg, &res);
    grpc_slice_unref(req);
    int rc = 0;
    if (res.errors) {
        *err = res.first_err;
        ag_err_prefix(err, "cannot spawn the agents for --rpc send");
        rc = -1;
    } else if (res.calls < cfg.calls) {
        rc = ag_err_set(err, AG_CANCELLED, "interrupted while spawning the agents for --rpc send");
    }
    bench_result_release(&res);
    return rc;
}

/* The packed request(s) of the measured run: one shared, or one per slot for send. */
static int build_requests(struct bench_ctx *b, const struct bench_cfg *base, grpc_slice **reqs,
                          size_t *nreqs, struct ag_err *err)
{
    const char *rpc = b->o.rpc;
    *nreqs = 1;
    *reqs = ag_xcalloc((size_t)b->o.concurrency, sizeof(**reqs));
    if (strcmp(rpc, "ping") == 0) {
        Agentry__V1__PingRequest req = AGENTRY__V1__PING_REQUEST__INIT;
        req.payload.len = (size_t)b->o.payload_bytes;
        req.payload.data = ag_xmalloc(req.payload.len + 1);
        memset(req.payload.data, 'x', req.payload.len);
        (*reqs)[0] = pack_slice(&req.base);
        free(req.payload.data);
    } else if (strcmp(rpc, "spawn") == 0) {
        (*reqs)[0] = mock_spawn_request("", false);
    } else if (strcmp(rpc, "invoke") == 0) {
        (*reqs)[0] = mock_spawn_request("final ok", true);
    } else {
        if (spawn_send_agents(b, base, err) < 0)
            return -1;
        *nreqs = (size_t)b->o.concurrency;
        for (size_t i = 0; i < *nreqs; i++) {
            Agentry__V1__SendMessageRequest req = AGENTRY__V1__SEND_MESSAGE_REQUEST__INIT;
            req.agent_id = b->agent_ids[i];
            req.input = "x";
            (*reqs)[i] = pack_slice(&req.base);
        }
    }
    return 0;
}

/* --- results --------------------------------------------------------------------------------- */

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

/* JSON numbers with no more digits than the measurement has. */
static double round_to(double v, double step)
{
    return round(v / step) * step;
}

static double per_second(const struct bench_result *r)
{
    double secs = (double)r->elapsed_ns / 1e9;
    return secs > 0 ? (double)(r->calls - r->errors) / secs : 0;
}

static cJSON *result_json(const struct bench_ctx *b, const struct bench_result *r)
{
    cJSON *o = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(o, "settings");
    cJSON_AddStringToObject(s, "rpc", b->o.rpc);
    cJSON_AddStringToObject(s, "hub", b->c->hub);
    cJSON_AddNumberToObject(s, "concurrency", (double)b->o.concurrency);
    cJSON_AddNumberToObject(s, "channels", (double)b->o.channels);
    if (b->o.calls)
        cJSON_AddNumberToObject(s, "calls", (double)b->o.calls);
    else
        cJSON_AddNumberToObject(s, "duration_ms", (double)b->o.duration_ms);
    cJSON_AddNumberToObject(s, "payload_bytes", (double)b->o.payload_bytes);
    cJSON_AddNumberToObject(s, "timeout_ms", (double)b->c->timeout_ms);
    cJSON_AddNumberToObject(o, "calls", (double)r->calls);
    cJSON_AddNumberToObject(o, "errors", (double)r->errors);
    if (r->errors) {
        cJSON *e = cJSON_AddObjectToObject(o, "first_error");
        cJSON_AddStringToObject(e, "code", ag_code_name(r->first_err.code));
        cJSON_AddStringToObject(e, "message", r->first_err.msg);
    } else {
        cJSON_AddNullToObject(o, "first_error");
    }
    cJSON_AddBoolToObject(o, "interrupted", bench_stop != 0);
    cJSON_AddBoolToObject(o, "hub_lost", r->hub_lost);
    cJSON_AddNumberToObject(o, "elapsed_s", round_to((double)r->elapsed_ns / 1e9, 0.001));
    cJSON_AddNumberToObject(o, "calls_per_s", round_to(per_second(r), 0.1));
    cJSON *l = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(l, "p50", ms(bench_hist_quantile(r->hist, 0.50)));
    cJSON_AddNumberToObject(l, "p95", ms(bench_hist_quantile(r->hist, 0.95)));
    cJSON_AddNumberToObject(l, "p99", ms(bench_hist_quantile(r->hist, 0.99)));
    cJSON_AddNumberToObject(l, "max", ms(bench_hist_quantile(r->hist, 1.0)));
    return o;
}

static void print_human(const struct bench_ctx *b, const struct bench_result *r)
{
    char d[32];
    printf("rpc            %s\nhub            %s\nconcurrency    %" PRId64
           "\nchannels       %" PRId64 "\n",
           b->o.rpc, b->c->hub, b->o.concurrency, b->o.channels);
    if (b->o.calls)
        printf("budget         %" PRId64 " calls\n", b->o.calls);
    else
        printf("budget         %s\n", cli_print_duration(d, sizeof(d), b->o.duration_ms));
    if (strcmp(b->o.rpc, "ping") == 0)
        printf("payload_bytes  %" PRId64 "\n", b->o.payload_bytes);
    printf("timeout        %s\n", cli_print_duration(d, sizeof(d), b->c->timeout_ms));
    printf("calls          %" PRIu64 "\nerrors         %" PRIu64 "\n", r->calls, r->errors);
    if (r->errors)
        printf("first_error    %s: %s\n", ag_code_name(r->first_err.code), r->first_err.msg);
    printf("elapsed        %.3fs%s\ncalls/s (ok)   %.1f\n", (double)r->elapsed_ns / 1e9,
           r->hub_lost  ? " (hub lost)"
           : bench_stop ? " (interrupted)"
                        : "",
           per_second(r));
    printf("latency_ms     p50=%.3f p95=%.3f p99=%.3f max=%.3f\n",
           ms(bench_hist_quantile(r->hist, 0.50)), ms(bench_hist_quantile(r->hist, 0.95)),
           ms(bench_hist_quantile(r->hist, 0.99)), ms(bench_hist_quantile(r->hist, 1.0)));
}

/* --- the command ----------------------------------------------------------------------------- */

static const char *method_for(const char *rpc)
{
    static const char *const methods[][2] = {{"ping", CLI_HUB_METHOD("Ping")},
                                             {"send", CLI_HUB_METHOD("SendMessage")},
                                             {"spawn", CLI_HUB_METHOD("Spawn")},
                                             {"invoke", CLI_HUB_METHOD("Invoke")}};
    for (size_t i = 0; i < AG_ARRAY_SIZE(methods); i++)
        if (strcmp(methods[i][0], rpc) == 0)
            return methods[i][1];
    return NULL; /* check_opts accepted only the rows above */
}

/* chans[0] is the client's own channel; the others are extra connections to the same hub. */
static void open_channels(struct bench_ctx *b)
{
    b->chans = ag_xcalloc((size_t)b->o.channels, sizeof(*b->chans));
    b->chans[0] = b->c->ch;
    for (int64_t i = 1; i < b->o.channels; i++)
        b->chans[i] = cli_client_channel(b->c, b->c->hub, NULL); /* known good: dialed before */
    b->agent_ids = ag_xcalloc((size_t)b->o.concurrency, sizeof(*b->agent_ids));
}

static void close_channels(struct bench_ctx *b)
{
    for (int64_t i = 1; i < b->o.channels; i++)
        rpc_channel_free(b->chans[i]);
    free(b->chans);
    for (int64_t i = 0; i < b->o.concurrency; i++)
        free(b->agent_ids[i]);
    free(b->agent_ids);
}

/* The measured run; prints the results. Returns the exit code. */
static int measure(struct bench_ctx *b, struct bench_cfg *cfg)
{
    struct bench_result res;
    bench_run(cfg, &res);
    if (cli_client_machine(b->c))
        cli_client_emit(b->c, result_json(b, &res), NULL);
    else
        print_human(b, &res);
    int rc = CLI_OK;
    struct ag_err err = AG_ERR_INIT;
    if (res.hub_lost) {
        ag_err_set(&err, res.lost_err.code,
                   "hub at '%s' stopped answering after %" PRIu64
                   " calls, so the run stopped: %s: %s",
                   b->c->hub, res.calls, ag_code_name(res.lost_err.code), res.lost_err.msg);
        rc = cli_fail(&err);
    } else if (res.errors) {
        ag_err_set(&err, res.first_err.code,
                   "%" PRIu64 " of %" PRIu64 " calls failed, the first "
                   "with %s: %s",
                   res.errors, res.calls, ag_code_name(res.first_err.code), res.first_err.msg);
        rc = cli_fail(&err);
    }
    bench_result_release(&res);
    return rc;
}

/* One Ping with the command's deadline before any load: without it, an unreachable hub made
 * every call fail at once and the engine spun through them until the budget was spent. It also
 * connects the first channel, so the first measured calls do not pay for the handshake. */
static int check_hub(struct cli_client *c, struct ag_err *err)
{
    Agentry__V1__PingRequest req = AGENTRY__V1__PING_REQUEST__INIT;
    void *resp;
    return cli_client_call(c, CLI_HUB_METHOD("Ping"), &req.base,
                           &agentry__v1__ping_response__descriptor, &resp, err);
}

static int run(struct bench_ctx *b)
{
    struct ag_err err = AG_ERR_INIT;
    if (cli_client_dial(b->c, &err) < 0 || check_hub(b->c, &err) < 0)
        return cli_fail(&err);
    open_channels(b);
    struct bench_cfg cfg = {
        .chans = b->chans,
        .nchans = (size_t)b->o.channels,
        .method = method_for(b->o.rpc),
        .concurrency = (size_t)b->o.concurrency,
        .duration_ms = b->o.calls ? 0 : b->o.duration_ms,
        .calls = (uint64_t)b->o.calls,
        .timeout_ms = b->c->timeout_ms,
        .on_reply = strcmp(b->o.rpc, "invoke") == 0 ? check_invoke : NULL,
        .progress = true, /* stderr, after the first second: short runs stay quiet */
        .stop = &bench_stop,
    };
    grpc_slice *reqs = NULL;
    size_t nreqs = 0;
    int rc;
    if (build_requests(b, &cfg, &reqs, &nreqs, &err) < 0) {
        rc = cli_fail(&err);
    } else {
        cfg.reqs = reqs;
        cfg.nreqs = nreqs;
        rc = measure(b, &cfg);
    }
    for (size_t i = 0; reqs && i < (size_t)b->o.concurrency; i++)
        grpc_slice_unref(reqs[i]); /* unused entries are zeroed slices: a no-op */
    free(reqs);
    close_channels(b);
    return rc;
}

static bool check_opts(struct bench_ctx *b, int *rc)
{
    static const char *const rpcs[] = {"ping", "send", "spawn", "invoke"};
    struct ag_err err = AG_ERR_INIT;
    bool known = false;
    for (size_t i = 0; i < AG_ARRAY_SIZE(rpcs); i++)
        known = known || strcmp(b->o.rpc, rpcs[i]) == 0;
    if (!*b->o.rpc)
        ag_err_set(&err, AG_INVALID_ARGUMENT, "missing --rpc (see 'agentry bench --help')");
    else if (!known)
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "invalid value '%s' for --rpc: want ping, send, spawn or invoke", b->o.rpc);
    else if (b->o.calls && b->o.duration_ms >= 0)
        ag_err_set(&err, AG_INVALID_ARGUMENT, "--duration and --calls exclude each other");
    else if (b->o.duration_ms == 0) /* "0" parses (it means none), but a run of none is no run */
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "invalid value '0' for --duration: want a positive duration like 5s");
    else if (b->o.payload_bytes && strcmp(b->o.rpc, "ping") != 0)
        ag_err_set(&err, AG_INVALID_ARGUMENT, "--payload-bytes applies to --rpc ping only");
    else if (b->o.channels > b->o.concurrency)
        ag_err_set(&err, AG_INVALID_ARGUMENT,
                   "--channels %" PRId64 " is more than --concurrency "
                   "%" PRId64 ": some channels would carry no call",
                   b->o.channels, b->o.concurrency);
    else
        return true;
    *rc = cli_usage_error(&err);
    return false;
}

int cli_cmd_bench(int argc, char **argv)
{
    struct cli_client c;
    cli_client_init(&c, -1); /* -1: not given; the default depends on --rpc */
    snprintf(c.timeout_help, sizeof(c.timeout_help),
             "per-call deadline (default 10s; 60s for --rpc invoke)");
    struct bench_ctx b = {&c, {"", 64, 1, -1, 0, 0}, NULL, NULL};
    struct ag_flag flags[CLI_MAX_FLAGS] = {
        {"rpc", 0, AG_FLAG_STR, &b.o.rpc, "RPC", "ping, send, spawn or invoke (required)", 0, 0},
        {"concurrency", 'c', AG_FLAG_INT, &b.o.concurrency, "N", "calls in flight (default 64)", 1,
         10000},
        {"channels", 0, AG_FLAG_INT, &b.o.channels, "K",
         "connections to spread them over (default 1)", 1, 1024},
        {"duration", 'd', AG_FLAG_DURATION, &b.o.duration_ms, "DURATION",
         "how long to run (default 5s)", 0, 0},
        {"calls", 'n', AG_FLAG_INT, &b.o.calls, "M", "run exactly M calls instead", 1, INT64_MAX},
        {"payload-bytes", 0, AG_FLAG_INT, &b.o.payload_bytes, "B", "Ping payload size (default 0)",
         0, BENCH_MAX_PAYLOAD},
    };
    size_t nflags = 6;
    cli_client_flags(&c, flags, &nflags, CLI_MAX_FLAGS);
    size_t npos;
    int rc;
    if (!cli_client_parse(&c, "bench", &bench_help, flags, nflags, argc, argv, NULL, 0, &npos,
                          &rc) ||
        !check_opts(&b, &rc))
        return rc;
    if (b.o.duration_ms < 0)
        b.o.duration_ms = 5000;
    if (c.timeout_ms < 0)
        c.timeout_ms = strcmp(b.o.rpc, "invoke") == 0 ? BENCH_INVOKE_TIMEOUT_MS
                                                      : CLI_TIMEOUT_DEFAULT_MS;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = run(&b);
    if (rc == CLI_OK && bench_stop) /* the partial results are printed; the exit says why */
        rc = 128 + bench_stop;
    cli_client_close(&c);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
