/* worker/model_wire.c - what the wire formats share: JSON helpers with errors a user can act on,
 * the streamed-reply accumulator, error bodies and key headers (worker/model_wire_internal.h).
 *
 * Invariants: a model's reply never crashes the node and never reaches a message unprintable:
 * excerpts of malformed bodies are cut short and control bytes become spaces, so an error stays
 * one line. Pure functions; a stream object belongs to one call at a time. */
#include "worker/model_wire_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void wk_wire__buf_add(struct wk_wire__buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > b->cap)
            b->cap *= 2;
        b->p = ag_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct wk_wire_stream *wk_wire__stream_new(void)
{
    return ag_xcalloc(1, sizeof(struct wk_wire_stream));
}

void wk_wire__stream_free(struct wk_wire_stream *s)
{
    if (!s)
        return;
    free(s->text.p);
    for (size_t i = 0; i < s->nparts; i++) {
        free(s->parts[i].id);
        free(s->parts[i].name);
        free(s->parts[i].args.p);
        free(s->parts[i].start_input);
    }
    free(s->parts);
    free(s);
}

struct wk_wire__part *wk_wire__part_find(struct wk_wire_stream *s, long index)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i].index == index)
            return &s->parts[i];
    return NULL;
}

struct wk_wire__part *wk_wire__part_get(struct wk_wire_stream *s, long index)
{
    struct wk_wire__part *p = wk_wire__part_find(s, index);
    if (p)
        return p;
    if (s->nparts == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->parts = ag_xrealloc(s->parts, s->cap * sizeof(*s->parts));
    }
    p = &s->parts[s->nparts++];
    memset(p, 0, sizeof(*p));
    p->index = index;
    return p;
}

void wk_wire__stream_text(struct wk_wire_stream *s, const char *text, wk_wire_text_fn *on_text,
                          void *arg)
{
    size_t n = strlen(text);
    if (n == 0)
        return;
    wk_wire__buf_add(&s->text, text, n);
    if (on_text)
        on_text(arg, text, n);
}

static int part_cmp(const void *a, const void *b)
{
    long x = ((const struct wk_wire__part *)a)->index;
    long y = ((const struct wk_wire__part *)b)->index;
    return (x > y) - (x < y);
}

struct wk_chat_reply *wk_wire__stream_reply(struct wk_wire_stream *s, const char *wire,
                                            bool complete, struct ag_err *err)
{
    if (!complete) {
        ag_err_set(err, AG_UNKNOWN,
                   "the %s stream ended before the reply was complete (no end marker); the "
                   "model API or a proxy cut the connection",
                   wire);
        return NULL;
    }
    /* Indexes may arrive in any order; the reply lists calls as the model numbered them. */
    if (s->nparts > 1)
        qsort(s->parts, s->nparts, sizeof(*s->parts), part_cmp);
    struct wk_chat_reply *r = ag_xcalloc(1, sizeof(*r));
    for (size_t i = 0; i < s->nparts; i++) {
        struct wk_wire__part *p = &s->parts[i];
        if (!p->is_call)
            continue;
        if (!p->name || !*p->name) {
            wk_chat_reply_free(r);
            ag_err_set(err, AG_UNKNOWN, "the %s stream's tool call at index %ld has no name", wire,
                       p->index);
            return NULL;
        }
        const char *args = p->args.len == 0 && p->start_input ? p->start_input
                                                              : wk_wire__or_empty(p->args.p);
        char *id = p->id ? NULL : ag_xasprintf("call_%zu", r->ncalls + 1);
        wk_wire__reply_add_call(r, p->id ? p->id : id, p->name, ag_xstrdup(args));
        free(id);
    }
    r->content = ag_xstrdup(wk_wire__or_empty(s->text.p));
    r->input_tokens = s->input_tokens;
    r->output_tokens = s->output_tokens;
    return r;
}

/* Up to 40 bytes of s from at, control bytes as spaces, for an error message. */
static void excerpt(const char *s, size_t len, size_t at, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = at; i < len && n + 1 < cap && n < 40; i++)
        out[n++] = iscntrl((unsigned char)s[i]) ? ' ' : s[i];
    out[n] = '\0';
}

cJSON *wk_wire__parse(const char *wire, const char *what, const char *body, size_t len,
                      struct ag_err *err)
{
    const char *end = NULL;
    cJSON *root = body ? cJSON_ParseWithLengthOpts(body, len, &end, 0) : NULL;
    size_t at = end && end >= body ? (size_t)(end - body) : 0;
    if (root) {
        /* cJSON stops after the first value; anything but whitespace after it is malformed. */
        while (at < len && isspace((unsigned char)body[at]))
            at++;
        if (at == len && cJSON_IsObject(root))
            return root;
        const char *why = at < len ? "has bytes after its JSON value" : "is not a JSON object";
        cJSON_Delete(root);
        char ex[48];
        excerpt(body, len, at < len ? at : 0, ex, sizeof(ex));
        ag_err_set(err, AG_UNKNOWN, "the %s %s %s: '%s'", wire, what, why, ex);
        return NULL;
    }
    char ex[48];
    excerpt(body, len, at > 20 ? at - 20 : 0, ex, sizeof(ex));
    ag_err_set(err, AG_UNKNOWN, "the %s %s is not valid JSON (at byte %zu of %zu, near '%s')", wire,
               what, at, len, ex);
    return NULL;
}

/* s as one line: control bytes become spaces, surrounding whitespace goes. */
static char *one_line(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *out = ag_xstrdup(s);
    size_t n = strlen(out);
    while (n > 0 && isspace((unsigned char)out[n - 1]))
        out[--n] = '\0';
    for (char *p = out; *p; p++)
        if (iscntrl((unsigned char)*p))
            *p = ' ';
    return out;
}

char *wk_wire__error_text(const cJSON *root)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(e) && *e->valuestring)
        return one_line(e->valuestring);
    const char *msg = wk_wire__str(e, "message");
    return msg && *msg ? one_line(msg) : NULL;
}

char *wk_wire__error_message(const char *body, size_t len)
{
    if (!body)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(body, len);
    char *msg = cJSON_IsObject(root) ? wk_wire__error_text(root) : NULL;
    cJSON_Delete(root);
    return msg;
}

const char *wk_wire__str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

uint64_t wk_wire__u64(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return 0;
    /* 2^63: far above any token count, and converts without overflow. */
    return v->valuedouble >= 9223372036854775808.0 ? UINT64_C(1) << 63 : (uint64_t)v->valuedouble;
}

bool wk_wire__index(const cJSON *v, long *out)
{
    /* Checked before the conversion: a double out of long's range is undefined behaviour. */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1e6))
        return false;
    *out = (long)v->valuedouble;
    return *out == v->valuedouble;
}

const char *wk_wire__or_empty(const char *s)
{
    return s ? s : "";
}

char *wk_wire__print(const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (!s) {
        fprintf(stderr, "out of memory printing a model request\n");
        abort();
    }
    return s;
}

void wk_wire__reply_add_call(struct wk_chat_reply *r, const char *id, const char *name,
                             char *arguments_take)
{
    r->calls = ag_xrealloc(r->calls, (r->ncalls + 1) * sizeof(*r->calls));
    struct wk_tool_call *c = &r->calls[r->ncalls++];
    c->id = ag_xstrdup(id);
    c->name = ag_xstrdup(name);
    c->arguments = arguments_take;
}

cJSON *wk_wire__tool_schema(const char *wire, const struct wk_chat_tool *t, struct ag_err *err)
{
    if (!t->schema_json || !*t->schema_json) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type", "object");
        cJSON_AddObjectToObject(s, "properties");
        return s;
    }
    cJSON *s = cJSON_Parse(t->schema_json);
    if (!cJSON_IsObject(s)) {
        cJSON_Delete(s);
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "cannot send tool '%s' to %s: its schema is not a JSON object",
                   wk_wire__or_empty(t->name), wire);
        return NULL;
    }
    return s;
}

size_t wk_wire__key_header(const char *prefix, const char *key, char **out, size_t cap)
{
    size_t n = key ? strcspn(key, "\r\n") : 0;
    if (n == 0 || cap == 0)
        return 0;
    out[0] = ag_xasprintf("%s%.*s", prefix, (int)n, key);
    return 1;
}
