/* worker/openapi.h - an OpenAPI 3 document as tools (types.proto, OpenApiSource).
 *
 * Owns: the parsed API: its base URL and, per operation that has an operationId, what a tool
 * needs: a description (summary, then description), the arguments' JSON schema and how each
 * argument becomes part of the request. Parsing is pure (no I/O): the caller fetched the text.
 *
 * The arguments' schema is an object with one property per path, query and header parameter
 * (named as the parameter; a second parameter of the same name in another place is named
 * "<in>_<name>"; cookie parameters are left out), plus "body" for a JSON request body (or
 * "request_body" if a parameter is named "body"). Path parameters and a required body are
 * required. Local references ("$ref": "#/components/...") are inlined, WK_OPENAPI_MAX_DEPTH deep:
 * deeper (or a cycle, or a reference to another document) becomes {"type": "object"}.
 *
 * The document: JSON, or YAML (converted with libyaml; anchors resolved, WK_OPENAPI_MAX_NODES
 * values at most, so a document of aliases cannot grow without bound). The base URL: the
 * source's base_url, else the first "servers" entry (its variables at their defaults; a relative
 * one is taken relative to the document's URL), else an error naming base_url.
 *
 * Idempotent (worker/tool.h): GET, HEAD, PUT, DELETE, OPTIONS and TRACE; POST and PATCH not.
 *
 * Threads: none; a parsed API is read-only, safe to share. */
#ifndef AGENTRY_WORKER_OPENAPI_H
#define AGENTRY_WORKER_OPENAPI_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "agentry/v1/types.pb-c.h"
#include "common/err.h"

#define WK_OPENAPI_MAX_DEPTH 8
#define WK_OPENAPI_MAX_NODES 200000
#define WK_OPENAPI_MAX_DOC (1u << 20)

enum wk_openapi_in { WK_OPENAPI_PATH, WK_OPENAPI_QUERY, WK_OPENAPI_HEADER };

struct wk_openapi_param {
    char *name; /* owned: as the document names it */
    char *arg;  /* owned: the argument's name */
    enum wk_openapi_in in;
    bool required;
};

struct wk_openapi_op {
    char *id;                        /* owned: the operationId */
    char *method;                    /* owned: "GET", "POST", ... */
    char *path;                      /* owned: "/pets/{petId}" */
    char *description;               /* owned */
    char *schema_json;               /* owned */
    struct wk_openapi_param *params; /* owned */
    size_t nparams;
    char *body_arg; /* owned: the argument holding the JSON body; NULL: no body */
    bool body_required;
    bool idempotent;
};

struct wk_openapi {
    char *base_url; /* owned, without a trailing '/' */
    char *host;     /* owned: base_url's host, lowercased (allowed implicitly) */
    char **headers; /* owned: the source's headers, "Name: value" */
    size_t nheaders;
    struct wk_openapi_op *ops; /* owned */
    size_t nops;
};

/* Parse text (the document) for src (its base_url, operations filter and headers); doc_url:
 * where it came from, for a relative server URL (NULL: inline). INVALID_ARGUMENT naming what is
 * wrong. An operations filter naming an operationId the document lacks is an error too. */
struct wk_openapi *wk_openapi_parse(const char *text, size_t len, const char *doc_url,
                                    const Agentry__V1__OpenApiSource *src, struct ag_err *err);
void wk_openapi_free(struct wk_openapi *api); /* NULL is a no-op */
const struct wk_openapi_op *wk_openapi_find(const struct wk_openapi *api, const char *id);

/* The request a call of op with args_json makes, as http_request's arguments ({"method", "url",
 * "headers", "body"}: worker/tool_http_request.h). Owned. NULL with err (INVALID_ARGUMENT) when
 * the arguments do not fit: not an object, a required one missing, a header value with a line
 * break. */
cJSON *wk_openapi_request(const struct wk_openapi *api, const struct wk_openapi_op *op,
                          const char *args_json, struct ag_err *err);

/* YAML text as JSON (owned), or NULL with err. For the document; exposed for tests. */
cJSON *wk_openapi_yaml_json(const char *text, size_t len, struct ag_err *err);

#endif
