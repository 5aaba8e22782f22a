/* worker/config.c - per-provider and per-tool options (see worker/config.h). */
#include "worker/config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/flags.h"
#include "common/xalloc.h"
#include "worker/model.h"
#include "worker/tool.h"
#include "worker/tool_ext.h"

const char *wk_config_get(const struct wk_config *c, const char *key)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->items[i].key, key) == 0)
            return c->items[i].value;
    return NULL;
}

int wk_config_duration(const struct wk_config *c, const char *key, int64_t *ms, struct ag_err *err)
{
    const char *v = wk_config_get(c, key);
    if (!v)
        return 0;
    if (ag_duration_parse(v, ms, err) == 0)
        return 0;
    ag_err_prefix(err, "option '%s.%s'", c->owner, key);
    return -1;
}

int wk_config_check_keys(const struct wk_config *c, const char *const *known, struct ag_err *err)
{
    for (size_t i = 0; c && i < c->n; i++) {
        bool ok = strcmp(c->items[i].key, "timeout") == 0;
        for (size_t k = 0; known && known[k] && !ok; k++)
            ok = strcmp(c->items[i].key, known[k]) == 0;
        if (ok)
            continue;
        char names[128] = "timeout";
        size_t off = strlen(names);
        for (size_t k = 0; known && known[k] && off < sizeof(names); k++)
            off += (size_t)snprintf(names + off, sizeof(names) - off, ", %s", known[k]);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown option '%s.%s': %s takes %s", c->owner,
                          c->items[i].key, c->owner, names);
    }
    return 0;
}

static void config_add(struct wk_config *c, const char *key, size_t keylen, const char *value)
{
    c->items = ag_xrealloc(c->items, (c->n + 1) * sizeof(*c->items));
    c->items[c->n].key = ag_xstrndup(key, keylen);
    c->items[c->n].value = ag_xstrdup(value);
    c->n++;
}

static void config_release(struct wk_config *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].key);
        free(c->items[i].value);
    }
    free(c->items);
}

/* Row names for messages: "mock, openai". */
/* "a, b, c", or as many as fit and "and N more" (the message must fit an ag_err). */
static void names_of(const char *const *names, size_t n, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t need = strlen(names[i]) + 2;
        if (off + need + sizeof(", and 999 more") > size) {
            snprintf(buf + off, size - off, ", and %zu more", n - i);
            return;
        }
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "", names[i]);
    }
}

/* One option into the config of its row (names[i] is row i's). what: "model" or "tool". */
static int parse_one(const char *opt, const char *what, const char *const *names, size_t nrows,
                     struct wk_config *rows, struct ag_err *err)
{
    const char *dot = strchr(opt, '.'), *eq = strchr(opt, '=');
    if (!dot || !eq || dot > eq || dot == opt || eq == dot + 1)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid %s option '%s': want NAME.KEY=VALUE, e.g. %s", what, opt,
                          strcmp(what, "model") == 0 ? "mock.latency=50ms" : "echo.timeout=2s");
    for (size_t i = 0; i < nrows; i++) {
        size_t len = (size_t)(dot - opt);
        if (strlen(names[i]) == len && strncmp(names[i], opt, len) == 0) {
            config_add(&rows[i], dot + 1, (size_t)(eq - dot - 1), eq + 1);
            return 0;
        }
    }
    char have[128];
    names_of(names, nrows, have, sizeof(have));
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "invalid %s option '%s': this node has no %s '%.*s' (it has: %s)", what, opt,
                      strcmp(what, "model") == 0 ? "model provider" : "tool", (int)(dot - opt), opt,
                      have);
}

/* Parse a row's options, its timeout, then its own keys. */
static int parse_rows(const char *what, const char *const *opts, size_t nopts,
                      const char *const *names, size_t nrows,
                      int (*const *checks)(const struct wk_config *, struct ag_err *),
                      struct wk_config *rows, struct ag_err *err)
{
    for (size_t i = 0; i < nrows; i++)
        rows[i].owner = names[i];
    for (size_t i = 0; i < nopts; i++)
        if (parse_one(opts[i], what, names, nrows, rows, err) != 0)
            return -1;
    for (size_t i = 0; i < nrows; i++) {
        if (wk_config_duration(&rows[i], "timeout", &rows[i].timeout_ms, err) != 0)
            return -1;
        int rc = checks[i] ? checks[i](&rows[i], err) : wk_config_check_keys(&rows[i], NULL, err);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int wk_configs_parse(struct wk_configs *out, const char *const *model_opts, size_t nmodel,
                     const char *const *tool_opts, size_t ntool, struct ag_err *err)
{
    size_t np = 0, nt = 0;
    while (wk_model_providers[np].name)
        np++;
    while (wk_tools[nt].name)
        nt++;
    /* The tools' rows, then "mcp": the options of the spec's MCP stdio servers, not a tool. */
    const char **names = ag_xcalloc(np + nt + 2, sizeof(*names));
    int (**checks)(const struct wk_config *, struct ag_err *) = ag_xcalloc(np + nt + 2,
                                                                           sizeof(*checks));
    for (size_t i = 0; i < np; i++) {
        names[i] = wk_model_providers[i].name;
        checks[i] = wk_model_providers[i].check_config;
    }
    for (size_t i = 0; i < nt; i++) {
        names[np + i] = wk_tools[i].name;
        checks[np + i] = wk_tools[i].check_config;
    }
    names[np + nt] = "mcp";
    checks[np + nt] = wk_tool_ext_check_config;
    out->models = ag_xcalloc(np + 1, sizeof(*out->models));
    out->tools = ag_xcalloc(nt + 2, sizeof(*out->tools));
    out->mcp = &out->tools[nt];
    int rc = parse_rows("model", model_opts, nmodel, names, np, checks, out->models, err);
    if (rc == 0)
        rc = parse_rows("tool", tool_opts, ntool, names + np, nt + 1, checks + np, out->tools, err);
    free(names);
    free(checks);
    if (rc != 0)
        wk_configs_release(out);
    return rc;
}

void wk_configs_release(struct wk_configs *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->models && wk_model_providers[i].name; i++)
        config_release(&c->models[i]);
    for (size_t i = 0; c->tools && wk_tools[i].name; i++)
        config_release(&c->tools[i]);
    if (c->mcp)
        config_release(c->mcp);
    free(c->models);
    free(c->tools);
    c->models = c->tools = c->mcp = NULL;
}
