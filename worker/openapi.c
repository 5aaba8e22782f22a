/* worker/openapi.c - an OpenAPI 3 document as tools: parsing, schemas, requests (see openapi.h).
 * Pure functions over cJSON trees; no state, no threads. */
#include "worker/openapi.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/xalloc.h"

#define OPENAPI_MAX_DESCRIPTION 1024
#define OPENAPI_MAX_REF_HOPS 16

static const char *const methods[] = {"get",     "put",  "post",  "delete",
                                      "options", "head", "patch", "trace"};

/* --- YAML ---------------------------------------------------------------------------------- */

struct yaml_walk {
    yaml_document_t doc;
    size_t nodes;
    struct ag_err *err;
};

/* A plain scalar as YAML's core schema reads it (null, booleans, numbers), else a string. */
static cJSON *yaml_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return cJSON_CreateString(s);
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return cJSON_CreateNull();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return cJSON_CreateTrue();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return cJSON_CreateFalse();
    char *end;
    double d = strtod(s, &end);
    if (strchr("+-.0123456789", s[0]) && !*end && !strpbrk(s, "xXnN") && isfinite(d))
        return cJSON_CreateNumber(d);
    return cJSON_CreateString(s);
}

static cJSON *yaml_node_json(struct yaml_walk *w, yaml_node_t *n, int depth)
{
    if (!n || ++w->nodes > WK_OPENAPI_MAX_NODES || depth > 256) {
        ag_err_set(w->err, AG_INVALID_ARGUMENT,
                   "the document is too large or too deep as JSON (at most %d values)",
                   WK_OPENAPI_MAX_NODES);
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE)
        return yaml_scalar(n);
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++) {
            cJSON *v = yaml_node_json(w, yaml_document_get_node(&w->doc, *i), depth + 1);
            if (!v) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    cJSON *o = cJSON_CreateObject();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&w->doc, p->key);
        /* Keys are strings in JSON: a number key ("200:" under responses) keeps its text. */
        const char *key = k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value
                                                           : NULL;
        cJSON *v = key ? yaml_node_json(w, yaml_document_get_node(&w->doc, p->value), depth + 1)
                       : NULL;
        if (!v) {
            if (!key)
                ag_err_set(w->err, AG_INVALID_ARGUMENT, "a mapping key that is not a string");
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, key, v);
    }
    return o;
}

cJSON *wk_openapi_yaml_json(const char *text, size_t len, struct ag_err *err)
{
    yaml_parser_t ps;
    yaml_parser_initialize(&ps);
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
    struct yaml_walk w = {.err = err};
    if (!yaml_parser_load(&ps, &w.doc)) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "invalid YAML at line %zu: %s",
                   ps.problem_mark.line + 1, ps.problem ? ps.problem : "unreadable");
        yaml_parser_delete(&ps);
        return NULL;
    }
    yaml_parser_delete(&ps);
    yaml_node_t *root = yaml_document_get_root_node(&w.doc);
    cJSON *out = root ? yaml_node_json(&w, root, 0) : NULL;
    if (!root)
        ag_err_set(err, AG_INVALID_ARGUMENT, "the document is empty");
    yaml_document_delete(&w.doc);
    return out;
}

/* --- references and schemas ---------------------------------------------------------------- */

/* The value a local JSON pointer ("#/components/schemas/Pet") names, or NULL. */
static const cJSON *pointer(const cJSON *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    const cJSON *cur = doc;
    char tok[256];
    for (const char *p = ref + 2; cur && *p;) {
        size_t k = 0;
        for (; *p && *p != '/'; p++) {
            char c = *p;
            if (c == '~' && (p[1] == '0' || p[1] == '1'))
                c = *++p == '0' ? '~' : '/';
            if (k + 1 < sizeof(tok))
                tok[k++] = c;
        }
        tok[k] = '\0';
        if (*p == '/')
            p++;
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(tok))
                                 : cJSON_GetObjectItemCaseSensitive(cur, tok);
    }
    return cur;
}

/* n, or what its "$ref" chain leads to (NULL if it leads nowhere). */
static const cJSON *deref(const cJSON *doc, const cJSON *n)
{
    for (int hops = 0; n && hops < OPENAPI_MAX_REF_HOPS; hops++) {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(n, "$ref");
        if (!cJSON_IsString(ref))
            return n;
        n = pointer(doc, ref->valuestring);
    }
    return NULL;
}

/* A copy of schema with its local references inlined, depth levels of them at most. */
static cJSON *inline_schema(const cJSON *doc, const cJSON *s, int depth, size_t *budget)
{
    if (!s || *budget == 0)
        return cJSON_CreateObject();
    (*budget)--;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (cJSON_IsString(ref)) {
        const cJSON *target = depth < WK_OPENAPI_MAX_DEPTH ? pointer(doc, ref->valuestring) : NULL;
        if (!target) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "object");
            return o;
        }
        return inline_schema(doc, target, depth + 1, budget);
    }
    if (cJSON_IsArray(s)) {
        cJSON *a = cJSON_CreateArray();
        const cJSON *i;
        cJSON_ArrayForEach(i, s) cJSON_AddItemToArray(a, inline_schema(doc, i, depth, budget));
        return a;
    }
    if (!cJSON_IsObject(s))
        return cJSON_Duplicate(s, false);
    cJSON *o = cJSON_CreateObject();
    const cJSON *i;
    cJSON_ArrayForEach(i, s)
    {
        /* Only keys that hold schemas are walked; examples and the like are copied. */
        if (strcmp(i->string, "example") == 0 || strcmp(i->string, "examples") == 0 ||
            strcmp(i->string, "xml") == 0)
            continue;
        cJSON_AddItemToObject(o, i->string, inline_schema(doc, i, depth, budget));
    }
    return o;
}

/* --- operations ------------------------------------------------------------------------------ */

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *describe(const cJSON *op, const char *method, const char *path)
{
    const char *sum = str_of(op, "summary"), *desc = str_of(op, "description");
    char *d = ag_xasprintf("%s%s%s%s%s %s", sum ? sum : "", sum && desc ? "\n\n" : "",
                           desc ? desc : "", sum || desc ? "\n\n" : "", method, path);
    size_t n = strlen(d);
    if (n > OPENAPI_MAX_DESCRIPTION)
        d[ag_utf8_prefix(d, OPENAPI_MAX_DESCRIPTION)] = '\0';
    return d;
}

static bool has_param(const struct wk_openapi_op *op, const char *arg)
{
    for (size_t i = 0; i < op->nparams; i++)
        if (strcmp(op->params[i].arg, arg) == 0)
            return true;
    return false;
}

/* One parameter (already dereferenced) into op and the schema's properties. */
static void add_param(const cJSON *doc, const cJSON *p, struct wk_openapi_op *op, cJSON *props,
                      cJSON *required, size_t *budget)
{
    const char *name = str_of(p, "name"), *in = str_of(p, "in");
    if (!name || !in)
        return;
    enum wk_openapi_in where;
    if (strcmp(in, "path") == 0)
        where = WK_OPENAPI_PATH;
    else if (strcmp(in, "query") == 0)
        where = WK_OPENAPI_QUERY;
    else if (strcmp(in, "header") == 0)
        where = WK_OPENAPI_HEADER;
    else
        return; /* cookies: the node keeps no cookie jar for an agent */
    for (size_t i = 0; i < op->nparams; i++)
        if (op->params[i].in == where && strcmp(op->params[i].name, name) == 0)
            return; /* the operation's own overrode the path item's (it came first) */
    char *arg = has_param(op, name) ? ag_xasprintf("%s_%s", in, name) : ag_xstrdup(name);
    bool req = where == WK_OPENAPI_PATH || cJSON_IsTrue(cJSON_GetObjectItem(p, "required"));
    op->params = ag_xrealloc(op->params, (op->nparams + 1) * sizeof(*op->params));
    op->params[op->nparams++] = (struct wk_openapi_param){ag_xstrdup(name), arg, where, req};
    cJSON *schema = inline_schema(doc, cJSON_GetObjectItemCaseSensitive(p, "schema"), 0, budget);
    const char *desc = str_of(p, "description");
    if (cJSON_IsObject(schema) && desc && !cJSON_GetObjectItemCaseSensitive(schema, "description"))
        cJSON_AddStringToObject(schema, "description", desc);
    cJSON_AddItemToObject(props, arg, schema);
    if (req)
        cJSON_AddItemToArray(required, cJSON_CreateString(arg));
}

static void add_params(const cJSON *doc, const cJSON *list, struct wk_openapi_op *op, cJSON *props,
                       cJSON *required, size_t *budget)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, list) add_param(doc, deref(doc, p), op, props, required, budget);
}

/* The JSON schema of the request body: application/json, or any "+json" type. */
static const cJSON *json_body_schema(const cJSON *body)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(body, "content");
    const cJSON *c;
    cJSON_ArrayForEach(c, content)
    {
        if (strncasecmp(c->string, "application/json", 16) == 0 || strstr(c->string, "+json"))
            return cJSON_GetObjectItemCaseSensitive(c, "schema");
    }
    return NULL;
}

static void make_op(const cJSON *doc, const cJSON *item, const cJSON *opj, const char *method,
                    const char *path, struct wk_openapi_op *op)
{
    size_t budget = 20000; /* schema values inlined for one tool */
    op->id = ag_xstrdup(str_of(opj, "operationId"));
    op->method = ag_xstrdup(method);
    for (char *c = op->method; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    op->path = ag_xstrdup(path);
    op->description = describe(opj, op->method, path);
    op->idempotent = strcmp(op->method, "POST") != 0 && strcmp(op->method, "PATCH") != 0;
    cJSON *schema = cJSON_CreateObject();
    cJSON_AddStringToObject(schema, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(schema, "properties");
    cJSON *required = cJSON_CreateArray();
    add_params(doc, cJSON_GetObjectItemCaseSensitive(opj, "parameters"), op, props, required,
               &budget);
    add_params(doc, cJSON_GetObjectItemCaseSensitive(item, "parameters"), op, props, required,
               &budget);
    const cJSON *body = deref(doc, cJSON_GetObjectItemCaseSensitive(opj, "requestBody"));
    const cJSON *bs = body ? json_body_schema(body) : NULL;
    if (bs) {
        op->body_arg = ag_xstrdup(has_param(op, "body") ? "request_body" : "body");
        op->body_required = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "required"));
        cJSON *s = inline_schema(doc, bs, 0, &budget);
        const char *desc = str_of(body, "description");
        if (cJSON_IsObject(s) && desc && !cJSON_GetObjectItemCaseSensitive(s, "description"))
            cJSON_AddStringToObject(s, "description", desc);
        cJSON_AddItemToObject(props, op->body_arg, s);
        if (op->body_required)
            cJSON_AddItemToArray(required, cJSON_CreateString(op->body_arg));
    }
    cJSON_AddItemToObject(schema, "required", required);
    char *t = cJSON_PrintUnformatted(schema);
    op->schema_json = ag_xstrdup(t);
    cJSON_free(t);
    cJSON_Delete(schema);
}

static bool wanted(const Agentry__V1__OpenApiSource *src, const char *id)
{
    if (src->n_operations == 0)
        return true;
    for (size_t i = 0; i < src->n_operations; i++)
        if (strcmp(src->operations[i], id) == 0)
            return true;
    return false;
}

static void add_ops(struct wk_openapi *api, const cJSON *doc, const Agentry__V1__OpenApiSource *src)
{
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    const cJSON *item;
    cJSON_ArrayForEach(item, paths)
    {
        const cJSON *it = deref(doc, item);
        for (size_t k = 0; it && k < sizeof(methods) / sizeof(methods[0]); k++) {
            const cJSON *opj = cJSON_GetObjectItemCaseSensitive(it, methods[k]);
            const char *id = str_of(opj, "operationId");
            if (!id || !*id || !wanted(src, id) || wk_openapi_find(api, id))
                continue;
            api->ops = ag_xrealloc(api->ops, (api->nops + 1) * sizeof(*api->ops));
            struct wk_openapi_op *op = &api->ops[api->nops++];
            memset(op, 0, sizeof(*op));
            make_op(doc, it, opj, methods[k], item->string, op);
        }
    }
}

/* --- the base URL -------------------------------------------------------------------------- */

/* servers[0].url with its variables at their defaults. Owned, or NULL. */
static char *server_url(const cJSON *doc)
{
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "servers"), 0);
    const char *url = str_of(s, "url");
    if (!url)
        return NULL;
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(s, "variables");
    size_t cap = strlen(url) + 1024, off = 0;
    char *out = ag_xmalloc(cap);
    for (const char *p = url; *p && off + 1 < cap;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (!close) {
            out[off++] = *p++;
            continue;
        }
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(close - p - 1), p + 1);
        const char *def = str_of(cJSON_GetObjectItemCaseSensitive(vars, name), "default");
        off += (size_t)snprintf(out + off, cap - off, "%s", def ? def : "");
        p = close + 1;
    }
    out[off < cap ? off : cap - 1] = '\0';
    return out;
}

/* An absolute http(s) base (owned), or NULL. A relative server URL is joined to the document's
 * origin. */
static char *base_of(const char *given, const char *doc_url, const cJSON *doc)
{
    char *base = given && *given ? ag_xstrdup(given) : server_url(doc);
    if (base && base[0] == '/' && doc_url) {
        const char *host = strstr(doc_url, "://");
        const char *slash = host ? strchr(host + 3, '/') : NULL;
        size_t origin = slash ? (size_t)(slash - doc_url) : strlen(doc_url);
        char *abs = ag_xasprintf("%.*s%s", (int)origin, doc_url, base);
        free(base);
        base = abs;
    }
    if (base && strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0) {
        free(base);
        return NULL;
    }
    if (base) {
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
            base[--n] = '\0';
    }
    return base;
}

static char *host_of(const char *url)
{
    const char *h = strstr(url, "://") + 3;
    if (*h == '[') { /* an IPv6 literal: curl reports it with its brackets */
        const char *e = strchr(h, ']');
        return ag_xasprintf("%.*s", e ? (int)(e - h + 1) : (int)strlen(h), h);
    }
    size_t n = strcspn(h, ":/?#");
    const char *at = memchr(h, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    char *out = ag_xasprintf("%.*s", (int)n, h);
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return out;
}

/* --- the API ------------------------------------------------------------------------------- */

static int check_filter(const struct wk_openapi *api, const Agentry__V1__OpenApiSource *src,
                        struct ag_err *err)
{
    for (size_t i = 0; i < src->n_operations; i++)
        if (!wk_openapi_find(api, src->operations[i]))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "operations names '%.64s', which the document has no operation "
                              "with that operationId for",
                              src->operations[i]);
    return 0;
}

struct wk_openapi *wk_openapi_parse(const char *text, size_t len, const char *doc_url,
                                    const Agentry__V1__OpenApiSource *src, struct ag_err *err)
{
    size_t lead = 0;
    while (lead < len && isspace((unsigned char)text[lead]))
        lead++;
    cJSON *doc = lead < len && text[lead] == '{' ? cJSON_ParseWithLength(text, len)
                                                 : wk_openapi_yaml_json(text, len, err);
    if (!doc) {
        if (err->code == AG_OK)
            ag_err_set(err, AG_INVALID_ARGUMENT, "the document is not valid JSON");
        return NULL;
    }
    struct wk_openapi *api = NULL;
    const char *ver = str_of(doc, "openapi");
    if (!cJSON_IsObject(doc) || !ver || strncmp(ver, "3.", 2) != 0) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "not an OpenAPI 3 document (no \"openapi\": \"3.x\"; Swagger 2.0 is not "
                   "supported: convert it)");
        goto out;
    }
    api = ag_xcalloc(1, sizeof(*api));
    api->base_url = base_of(src->base_url, doc_url, doc);
    if (!api->base_url) {
        ag_err_set(err, AG_INVALID_ARGUMENT,
                   "no base URL: the document's servers give no absolute http(s) URL; set "
                   "base_url");
        goto fail;
    }
    api->host = host_of(api->base_url);
    api->headers = ag_xcalloc(src->n_headers + 1, sizeof(*api->headers));
    for (size_t i = 0; i < src->n_headers; i++)
        api->headers[api->nheaders++] = ag_xasprintf("%s: %s", src->headers[i]->key,
                                                     src->headers[i]->value);
    add_ops(api, doc, src);
    if (check_filter(api, src, err) != 0)
        goto fail;
    if (api->nops == 0) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "the document has no operation with an operationId");
        goto fail;
    }
    goto out;
fail:
    wk_openapi_free(api);
    api = NULL;
out:
    cJSON_Delete(doc);
    return api;
}

void wk_openapi_free(struct wk_openapi *api)
{
    if (!api)
        return;
    for (size_t i = 0; i < api->nops; i++) {
        struct wk_openapi_op *op = &api->ops[i];
        free(op->id);
        free(op->method);
        free(op->path);
        free(op->description);
        free(op->schema_json);
        for (size_t k = 0; k < op->nparams; k++) {
            free(op->params[k].name);
            free(op->params[k].arg);
        }
        free(op->params);
        free(op->body_arg);
    }
    free(api->ops);
    for (size_t i = 0; i < api->nheaders; i++)
        free(api->headers[i]);
    free(api->headers);
    free(api->base_url);
    free(api->host);
    free(api);
}

const struct wk_openapi_op *wk_openapi_find(const struct wk_openapi *api, const char *id)
{
    for (size_t i = 0; i < api->nops; i++)
        if (strcmp(api->ops[i].id, id) == 0)
            return &api->ops[i];
    return NULL;
}

/* --- requests ------------------------------------------------------------------------------ */

/* Percent-encoded: only RFC 3986's unreserved characters stay as they are, so a value can never
 * add a path segment, a query parameter or a fragment. */
static void sb_escape(struct ag_strbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            ag_strbuf_add(b, (const char *)&c, 1);
        } else {
            char hex[4];
            snprintf(hex, sizeof(hex), "%%%02X", c);
            ag_strbuf_add(b, hex, 3);
        }
    }
}

/* A scalar argument as the text that goes in the URL or a header (owned). */
static char *value_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return ag_xstrdup(v->valuestring);
    if (cJSON_IsBool(v))
        return ag_xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15)
        return ag_xasprintf("%.0f", v->valuedouble);
    char *t = cJSON_PrintUnformatted(v);
    char *out = ag_xstrdup(t);
    cJSON_free(t);
    return out;
}

static void add_query(struct ag_strbuf *url, bool *first, const char *name, const cJSON *v)
{
    if (cJSON_IsArray(v)) { /* form style, exploded: name=a&name=b */
        const cJSON *i;
        cJSON_ArrayForEach(i, v) add_query(url, first, name, i);
        return;
    }
    ag_strbuf_add(url, *first ? "?" : "&", 1);
    *first = false;
    sb_escape(url, name);
    ag_strbuf_add(url, "=", 1);
    char *t = value_text(v);
    sb_escape(url, t);
    free(t);
}

/* base + path with its {params} filled in; -1 with err if one is missing. */
static int build_path(struct ag_strbuf *url, const struct wk_openapi_op *op, const cJSON *args,
                      struct ag_err *err)
{
    for (const char *p = op->path; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (!close) {
            ag_strbuf_add(url, p++, 1);
            continue;
        }
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(close - p - 1), p + 1);
        const struct wk_openapi_param *pp = NULL;
        for (size_t i = 0; i < op->nparams && !pp; i++)
            if (op->params[i].in == WK_OPENAPI_PATH && strcmp(op->params[i].name, name) == 0)
                pp = &op->params[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, pp ? pp->arg : name);
        if (!v || cJSON_IsNull(v))
            return ag_err_set(err, AG_INVALID_ARGUMENT, "operation '%s' needs the argument '%s'",
                              op->id, pp ? pp->arg : name);
        char *t = value_text(v);
        sb_escape(url, t);
        free(t);
        p = close + 1;
    }
    return 0;
}

static int add_param_values(const struct wk_openapi_op *op, const cJSON *args,
                            struct ag_strbuf *url, cJSON *headers, struct ag_err *err)
{
    bool first = strchr(op->path, '?') == NULL;
    for (size_t i = 0; i < op->nparams; i++) {
        const struct wk_openapi_param *p = &op->params[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, p->arg);
        if (!v || cJSON_IsNull(v)) {
            if (p->required)
                return ag_err_set(err, AG_INVALID_ARGUMENT,
                                  "operation '%s' needs the argument '%s'", op->id, p->arg);
            continue;
        }
        if (p->in == WK_OPENAPI_QUERY) {
            add_query(url, &first, p->name, v);
        } else if (p->in == WK_OPENAPI_HEADER) {
            char *t = value_text(v);
            if (strpbrk(t, "\r\n")) {
                free(t);
                return ag_err_set(err, AG_INVALID_ARGUMENT,
                                  "argument '%s' (a header) must be one line", p->arg);
            }
            cJSON_AddItemToObject(headers, p->name, cJSON_CreateString(t));
            free(t);
        }
    }
    return 0;
}

cJSON *wk_openapi_request(const struct wk_openapi *api, const struct wk_openapi_op *op,
                          const char *args_json, struct ag_err *err)
{
    cJSON *args = cJSON_Parse(args_json && *args_json ? args_json : "{}");
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        ag_err_set(err, AG_INVALID_ARGUMENT, "operation '%s' takes a JSON object of arguments",
                   op->id);
        return NULL;
    }
    struct ag_strbuf url = {0};
    ag_strbuf_add(&url, api->base_url, strlen(api->base_url));
    cJSON *req = cJSON_CreateObject();
    cJSON *headers = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "method", op->method);
    if (build_path(&url, op, args, err) != 0 || add_param_values(op, args, &url, headers, err) != 0)
        goto fail;
    const cJSON *body = op->body_arg ? cJSON_GetObjectItemCaseSensitive(args, op->body_arg) : NULL;
    if (op->body_required && !body) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "operation '%s' needs the argument '%s'", op->id,
                   op->body_arg);
        goto fail;
    }
    for (size_t i = 0; i < api->nheaders; i++) {
        const char *colon = strchr(api->headers[i], ':');
        char *name = ag_xasprintf("%.*s", (int)(colon - api->headers[i]), api->headers[i]);
        if (!cJSON_GetObjectItem(headers, name))
            cJSON_AddStringToObject(headers, name, colon + 2);
        free(name);
    }
    if (body) {
        char *t = cJSON_PrintUnformatted(body);
        cJSON_AddStringToObject(req, "body", t);
        cJSON_free(t);
        if (!cJSON_GetObjectItem(headers, "Content-Type"))
            cJSON_AddStringToObject(headers, "Content-Type", "application/json");
    }
    if (!cJSON_GetObjectItem(headers, "Accept"))
        cJSON_AddStringToObject(headers, "Accept", "application/json, */*;q=0.5");
    cJSON_AddStringToObject(req, "url", url.s);
    cJSON_AddItemToObject(req, "headers", headers);
    free(url.s);
    cJSON_Delete(args);
    return req;
fail:
    free(url.s);
    cJSON_Delete(headers);
    cJSON_Delete(req);
    cJSON_Delete(args);
    return NULL;
}
