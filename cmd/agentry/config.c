/* cmd/agentry/config.c - the data directory and the config file (see config.h).
 *
 * The file is small, so libyaml's document API loads it as one tree, which is walked with a list
 * of allowed keys per mapping; every problem is one "FILE:LINE: what" line. The file is written
 * back whole (use-context, set-context): comments in it are not kept, as kubectl does not keep
 * them either. */
#include "cmd/agentry/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cmd/agentry/cli.h"
#include "common/xalloc.h"

/* --- directories ----------------------------------------------------------------------------- */

/* mkdir -p with mode 0700 for what it makes. -1 with errno. */
static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* $<xdg>/agentry<tail>, else $HOME/<fallback>/agentry<tail>, into buf. */
static void xdg_path(char *buf, size_t cap, const char *xdg, const char *fallback, const char *tail)
{
    const char *base = getenv(xdg);
    if (base && base[0] == '/') { /* the XDG spec: a relative value is to be ignored */
        snprintf(buf, cap, "%s/agentry%s", base, tail);
        return;
    }
    const char *home = getenv("HOME");
    snprintf(buf, cap, "%s/%s/agentry%s", home && *home ? home : ".", fallback, tail);
}

int cli_data_dir(const char *given, char *buf, size_t cap, struct ag_err *err)
{
    if (given && *given)
        snprintf(buf, cap, "%s", given);
    else
        xdg_path(buf, cap, "XDG_DATA_HOME", ".local/share", "");
    if (mkdir_p(buf) != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "cannot make the data directory '%s': %s (set --data-dir)", buf,
                          strerror(errno));
    return 0;
}

void cli_config_path(const char *given, char *buf, size_t cap)
{
    if (given && *given)
        snprintf(buf, cap, "%s", given);
    else
        xdg_path(buf, cap, "XDG_CONFIG_HOME", ".config", "/config.yaml");
}

/* --- reading --------------------------------------------------------------------------------- */

struct parse {
    const char *path;
    yaml_document_t doc;
    struct cli_config *cfg;
    struct ag_err *err;
};

static int fail(struct parse *ps, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parse *ps, const yaml_node_t *at, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ag_err_set(ps->err, AG_INVALID_ARGUMENT, "%s:%zu: %s", ps->path,
                      at ? at->start_mark.line + 1 : 1, msg);
}

static yaml_node_t *node(struct parse *ps, int i)
{
    return yaml_document_get_node(&ps->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Each key of mapping m is one of allowed (NULL-terminated) and appears once. */
static int check_keys(struct parse *ps, const yaml_node_t *m, const char *where,
                      const char *const *allowed)
{
    yaml_node_pair_t *b = m->data.mapping.pairs.start, *e = m->data.mapping.pairs.top;
    for (yaml_node_pair_t *i = b; i < e; i++) {
        yaml_node_t *kn = node(ps, i->key);
        const char *k = scalar(kn);
        if (!k)
            return fail(ps, kn, "%sa key must be a string", where);
        const char *const *a = allowed;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a) {
            char list[160] = "";
            for (a = allowed; *a; a++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         a == allowed ? "" : ", ", *a);
            return fail(ps, kn, "%sunknown key '%.40s' (expected %s)", where, k, list);
        }
        for (yaml_node_pair_t *j = b; j < i; j++)
            if (strcmp(scalar(node(ps, j->key)), k) == 0)
                return fail(ps, kn, "%sduplicate key '%s' (first at line %zu)", where, k,
                            node(ps, j->key)->start_mark.line + 1);
    }
    return 0;
}

/* A string value (a scalar; "" and null count as unset) into *out. */
static int get_str(struct parse *ps, const yaml_node_t *v, const char *key, char **out)
{
    const char *s = scalar(v);
    if (!s)
        return fail(ps, v, "%s: expected a string", key);
    bool null = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                (strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
    free(*out);
    *out = *s && !null ? ag_xstrdup(s) : NULL;
    return 0;
}

static const char *const context_keys[] = {"name", "hub",  "namespace", "token", "tls-dir",
                                           "ca",   "cert", "key",       NULL};

static char **context_field(struct cli_context *c, const char *key)
{
    char **fields[] = {&c->name,    &c->hub, &c->ns,   &c->token,
                       &c->tls_dir, &c->ca,  &c->cert, &c->key};
    for (size_t i = 0; context_keys[i]; i++)
        if (strcmp(context_keys[i], key) == 0)
            return fields[i];
    return NULL;
}

static int parse_context(struct parse *ps, const yaml_node_t *m, size_t idx)
{
    char where[48];
    snprintf(where, sizeof(where), "contexts[%zu]: ", idx);
    if (m->type != YAML_MAPPING_NODE)
        return fail(ps, m, "contexts[%zu]: expected a mapping (name, hub, namespace, ...)", idx);
    if (check_keys(ps, m, where, context_keys) != 0)
        return -1;
    struct cli_context c = {.line = m->start_mark.line + 1};
    int rc = 0;
    for (yaml_node_pair_t *i = m->data.mapping.pairs.start;
         rc == 0 && i < m->data.mapping.pairs.top; i++) {
        const char *k = scalar(node(ps, i->key));
        rc = get_str(ps, node(ps, i->value), k, context_field(&c, k));
    }
    if (rc == 0 && !c.name)
        rc = fail(ps, m, "contexts[%zu]: a context needs a name", idx);
    if (rc == 0 && cli_config_find(ps->cfg, c.name))
        rc = fail(ps, m, "contexts[%zu]: a second context named '%s'", idx, c.name);
    if (rc != 0) {
        for (size_t k = 0; context_keys[k]; k++)
            free(*context_field(&c, context_keys[k]));
        return -1;
    }
    ps->cfg->ctx = ag_xrealloc(ps->cfg->ctx, (ps->cfg->n + 1) * sizeof(*ps->cfg->ctx));
    ps->cfg->ctx[ps->cfg->n++] = c;
    return 0;
}

static int parse_root(struct parse *ps)
{
    static const char *const keys[] = {"current-context", "contexts", NULL};
    yaml_node_t *root = yaml_document_get_root_node(&ps->doc);
    if (!root) /* an empty file */
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return fail(ps, root, "expected a mapping with current-context and contexts");
    if (check_keys(ps, root, "", keys) != 0)
        return -1;
    for (yaml_node_pair_t *i = root->data.mapping.pairs.start; i < root->data.mapping.pairs.top;
         i++) {
        const char *k = scalar(node(ps, i->key));
        yaml_node_t *v = node(ps, i->value);
        if (strcmp(k, "current-context") == 0) {
            if (get_str(ps, v, k, &ps->cfg->current) != 0)
                return -1;
            continue;
        }
        if (scalar(v) && !*scalar(v))
            continue; /* "contexts:" with nothing under it */
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(ps, v, "contexts: expected a list of contexts");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++)
            if (parse_context(ps, node(ps, *it), (size_t)(it - v->data.sequence.items.start)) != 0)
                return -1;
    }
    return 0;
}

int cli_config_load(const char *path, bool must_exist, struct cli_config *cfg, struct ag_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = ag_xstrdup(path);
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT && !must_exist)
        return 0;
    if (!f)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read config file '%s': %s", path,
                          strerror(errno));
    cfg->exists = true;
    struct parse ps = {.path = path, .cfg = cfg, .err = err};
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc;
    if (!yaml_parser_load(&parser, &ps.doc)) {
        rc = ag_err_set(err, AG_INVALID_ARGUMENT, "%s:%zu: not YAML: %s", path,
                        parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
    } else {
        rc = parse_root(&ps);
        yaml_document_delete(&ps.doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

void cli_config_release(struct cli_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        for (size_t k = 0; context_keys[k]; k++)
            free(*context_field(&cfg->ctx[i], context_keys[k]));
    free(cfg->ctx);
    free(cfg->current);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

struct cli_context *cli_config_find(const struct cli_config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n; i++)
        if (strcmp(cfg->ctx[i].name, name) == 0)
            return &cfg->ctx[i];
    return NULL;
}

struct cli_context *cli_config_upsert(struct cli_config *cfg, const char *name)
{
    struct cli_context *c = cli_config_find(cfg, name);
    if (c)
        return c;
    cfg->ctx = ag_xrealloc(cfg->ctx, (cfg->n + 1) * sizeof(*cfg->ctx));
    c = &cfg->ctx[cfg->n++];
    *c = (struct cli_context){.name = ag_xstrdup(name)};
    return c;
}

/* --- writing --------------------------------------------------------------------------------- */

/* s as a YAML scalar: plain when that reads back as the same string, else double-quoted. */
static void put_scalar(FILE *out, const char *s)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "._/:@+-=,~";
    bool plain = *s && strspn(s, safe) == strlen(s) && !strchr("-:~,=", s[0]) &&
                 strcmp(s, "null") != 0 && strcmp(s, "true") != 0 && strcmp(s, "false") != 0;
    if (plain) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void cli_config_write(FILE *out, const struct cli_config *cfg, bool redact)
{
    if (cfg->current) {
        fputs("current-context: ", out);
        put_scalar(out, cfg->current);
        fputc('\n', out);
    }
    fputs(cfg->n ? "contexts:\n" : "contexts: []\n", out);
    for (size_t i = 0; i < cfg->n; i++) {
        const struct cli_context *c = &cfg->ctx[i];
        for (size_t k = 0; context_keys[k]; k++) {
            const char *v = *context_field((struct cli_context *)c, context_keys[k]);
            if (!v)
                continue;
            fprintf(out, "%s%s: ", k == 0 ? "  - " : "    ", context_keys[k]);
            put_scalar(out, redact && strcmp(context_keys[k], "token") == 0 ? "REDACTED" : v);
            fputc('\n', out);
        }
    }
}

int cli_config_save(const struct cli_config *cfg, struct ag_err *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s", cfg->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir_p(dir) != 0)
            return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot make the directory '%s': %s",
                              dir, strerror(errno));
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp%d", cfg->path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot write '%s': %s", tmp,
                          strerror(errno));
    }
    cli_config_write(f, cfg, false);
    /* Durable before the rename, so a crash leaves the old file or the new one, never half. */
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, cfg->path) != 0) {
        int e = errno;
        unlink(tmp);
        return ag_err_set(err, AG_FAILED_PRECONDITION, "cannot write config file '%s': %s",
                          cfg->path, strerror(e));
    }
    return 0;
}

/* --- this process's selection ---------------------------------------------------------------- */

/* --config and --context: noted from argv by cli_config_scan_args, and set again (to the same
 * values) when the command parses its flags. */
static const char *given_config, *given_context;
/* The file, loaded on first use and kept for the process's life (see config.h). */
static struct cli_config loaded;
static bool loaded_done;
static const struct cli_context *selected;
static struct ag_err load_err = AG_ERR_INIT; /* why the file or its context could not be used */

void cli_config_scan_args(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        const char **dest = strncmp(a, "--config", 8) == 0 && strchr("=", a[8])    ? &given_config
                            : strncmp(a, "--context", 9) == 0 && strchr("=", a[9]) ? &given_context
                                                                                   : NULL;
        if (!dest)
            continue;
        const char *eq = strchr(a, '=');
        if (eq)
            *dest = eq + 1;
        else if (i + 1 < argc)
            *dest = argv[++i];
    }
}

void cli_config_flags(struct ag_flag *flags, size_t *n, size_t cap)
{
    const struct ag_flag rows[] = {
        {"config", 0, AG_FLAG_STR, &given_config, "FILE",
         "the config file with contexts (default $AGENTRY_CONFIG, else "
         "~/.config/agentry/config.yaml; see docs/cli.md)",
         0, 0},
        {"context", 0, AG_FLAG_STR, &given_context, "NAME",
         "the config file's context to use (default $AGENTRY_CONTEXT, else its current-context)", 0,
         0},
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(rows); i++)
        ag_flags_push(flags, n, cap, rows[i]);
}

static const char *env_or(const char *given, const char *var)
{
    if (given && *given)
        return given;
    const char *e = getenv(var);
    return e && *e ? e : NULL;
}

const char *cli_config_given_path(void)
{
    return env_or(given_config, "AGENTRY_CONFIG");
}

const char *cli_config_given_context(void)
{
    return env_or(given_context, "AGENTRY_CONTEXT");
}

const struct cli_context *cli_config_context(void)
{
    if (loaded_done)
        return selected;
    loaded_done = true;
    char path[PATH_MAX];
    const char *given = cli_config_given_path();
    cli_config_path(given, path, sizeof(path));
    if (cli_config_load(path, given != NULL, &loaded, &load_err) != 0)
        return NULL;
    const char *name = cli_config_given_context();
    if (!name)
        name = loaded.current;
    if (name && !(selected = cli_config_find(&loaded, name)))
        ag_err_set(&load_err, AG_INVALID_ARGUMENT,
                   "no context '%s' in '%s' (see 'agentry config get-contexts')", name, path);
    return selected;
}

int cli_config_check(struct ag_err *err)
{
    if (load_err.code == AG_OK)
        return 0;
    *err = load_err;
    return -1;
}

void cli_config_client_defaults(struct cli_tls *t, const char **token)
{
    const struct cli_context *c = cli_config_context();
    if (!*token)
        *token = env_or(NULL, "AGENTRY_TOKEN");
    if (!*token && c)
        *token = c->token;
    if (!c || t->dir || t->ca || t->cert || t->key || env_or(NULL, "AGENTRY_TLS_DIR"))
        return;
    t->dir = c->tls_dir;
    t->ca = c->ca;
    t->cert = c->cert;
    t->key = c->key;
}
