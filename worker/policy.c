/* worker/policy.c - permission rules and the node's policy file (see policy.h).
 *
 * The file is small (at most 256 rules), so libyaml's document API loads it as one tree, which is
 * then walked; every problem is reported as "FILE:LINE: what" on one line, the line being the
 * offending node's, so that an operator can fix the file from the node's one line of stderr. */
#include "worker/policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "common/xalloc.h"

static const char *const decision_names[] = {"allow", "ask", "deny"};

const char *wk_policy_decision_name(enum wk_decision d)
{
    return decision_names[d];
}

bool wk_policy_decision_parse(const char *s, enum wk_decision *out)
{
    for (size_t i = 0; i < sizeof(decision_names) / sizeof(decision_names[0]); i++)
        if (s && strcmp(s, decision_names[i]) == 0) {
            *out = (enum wk_decision)i;
            return true;
        }
    return false;
}

/* Characters that join or redirect shell commands. */
static const char SHELL_OPERATORS[] = ";&|<>`$\n";

/* Does pattern p allow subject s? A glob's "*" also spans shell operators, so "echo *" would
 * allow "echo x > /etc/passwd; rm -rf ~": an allow pattern matches only a subject whose shell
 * operators it spells itself ("make *" does not allow "make; curl x | sh", "a | b" allows itself).
 * A deny or ask pattern matches as written: it may catch more, never less. */
static bool pattern_matches(const char *p, const char *s, enum wk_decision d)
{
    if (fnmatch(p, s, 0) != 0)
        return false;
    if (d != WK_DECISION_ALLOW)
        return true;
    for (const char *c = SHELL_OPERATORS; *c; c++)
        if (strchr(s, *c) && !strchr(p, *c))
            return false;
    return true;
}

/* A rule's tool is a glob ("*", "mcp__fs__*": a spec's MCP and OpenAPI tools share a prefix).
 * A rule with patterns matches only a call with a subject one of them matches. */
static bool rule_matches(const struct wk_policy_rule *r, const char *name, const char *subject)
{
    if (fnmatch(r->tool, name, 0) != 0)
        return false;
    if (r->npatterns == 0)
        return true;
    if (!subject)
        return false;
    for (size_t i = 0; i < r->npatterns; i++)
        if (pattern_matches(r->patterns[i], subject, r->decision))
            return true;
    return false;
}

const struct wk_policy_rule *wk_policy_rules_first(const struct wk_policy_rule *rules, size_t n,
                                                   const char *name, const char *subject,
                                                   size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (rule_matches(&rules[i], name, subject)) {
            *at = i;
            return &rules[i];
        }
    return NULL;
}

char *wk_policy_rule_describe(const struct wk_policy_rule *r)
{
    if (r->npatterns == 0)
        return ag_xasprintf("%s %s", wk_policy_decision_name(r->decision), r->tool);
    return ag_xasprintf("%s %s '%s'%s", wk_policy_decision_name(r->decision), r->tool,
                        r->patterns[0], r->npatterns > 1 ? ", ..." : "");
}

void wk_policy_rules_free(struct wk_policy_rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rules[i].tool);
        for (size_t k = 0; k < rules[i].npatterns; k++)
            free(rules[i].patterns[k]);
        free(rules[i].patterns);
    }
    free(rules);
}

void wk_policy_free(struct wk_policy *p)
{
    if (!p)
        return;
    wk_policy_rules_free(p->rules, p->nrules);
    free(p);
}

/* --- the file -------------------------------------------------------------------------------- */

struct parse {
    const char *path;
    yaml_document_t doc;
    struct wk_policy *p;
    struct ag_err *err;
};

static int fail(struct parse *ps, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parse *ps, const yaml_node_t *at, const char *fmt, ...)
{
    char msg[320];
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

/* How a wrong value reads in a message: "a list", "a mapping" or "'hot'" (cut at 40 bytes). */
static const char *shown(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    const char *s = scalar(n) ? scalar(n) : "";
    snprintf(buf, cap, "'%.40s%s'", s, strlen(s) > 40 ? "..." : "");
    return buf;
}

/* Each key of mapping m is a string, one of allowed (NULL-terminated, listed in the message as
 * expected), and appears once. where: "" or "rules[3]", for the message. */
static int check_keys(struct parse *ps, const yaml_node_t *m, const char *where,
                      const char *const *allowed, const char *expected)
{
    yaml_node_pair_t *b = m->data.mapping.pairs.start, *e = m->data.mapping.pairs.top;
    for (yaml_node_pair_t *i = b; i < e; i++) {
        yaml_node_t *kn = node(ps, i->key);
        const char *k = scalar(kn);
        char buf[64];
        if (!k)
            return fail(ps, kn, "%s%sa key must be a string, not %s", where, *where ? ": " : "",
                        shown(kn, buf, sizeof(buf)));
        const char *const *a = allowed;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a)
            return fail(ps, kn, "%s%sunknown key '%.40s' (expected %s)", where, *where ? ": " : "",
                        k, expected);
        for (yaml_node_pair_t *j = b; j < i; j++)
            if (strcmp(scalar(node(ps, j->key)), k) == 0)
                return fail(ps, kn, "%s%s%s: duplicate key (first at line %zu)", where,
                            *where ? "." : "", k, node(ps, j->key)->start_mark.line + 1);
    }
    return 0;
}

/* The value of key in mapping m, or NULL. */
static yaml_node_t *get(struct parse *ps, const yaml_node_t *m, const char *key)
{
    for (yaml_node_pair_t *i = m->data.mapping.pairs.start; i < m->data.mapping.pairs.top; i++)
        if (strcmp(scalar(node(ps, i->key)), key) == 0)
            return node(ps, i->value);
    return NULL;
}

static int parse_decision(struct parse *ps, const yaml_node_t *n, const char *key,
                          enum wk_decision *out)
{
    char buf[64];
    if (!wk_policy_decision_parse(scalar(n), out))
        return fail(ps, n, "%s: expected allow, ask or deny, got %s", key,
                    shown(n, buf, sizeof(buf)));
    return 0;
}

static int parse_patterns(struct parse *ps, const yaml_node_t *n, const char *key,
                          struct wk_policy_rule *r)
{
    char buf[64];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ps, n, "%s: expected a list of globs, got %s", key, shown(n, buf, sizeof(buf)));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > WK_POLICY_MAX_PATTERNS)
        return fail(ps, n, "%s has %zu patterns; the limit is %d", key, count,
                    WK_POLICY_MAX_PATTERNS);
    r->patterns = ag_xcalloc(count ? count : 1, sizeof(*r->patterns));
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = node(ps, n->data.sequence.items.start[i]);
        const char *s = scalar(it);
        if (!s || !*s || strlen(s) > WK_POLICY_MAX_PATTERN)
            return fail(ps, it, "%s[%zu]: a pattern must be a string of 1..%d bytes, got %s", key,
                        i, WK_POLICY_MAX_PATTERN, shown(it, buf, sizeof(buf)));
        r->patterns[r->npatterns++] = ag_xstrdup(s);
    }
    return 0;
}

static int parse_rule(struct parse *ps, const yaml_node_t *m, size_t i, struct wk_policy_rule *r)
{
    static const char *const keys[] = {"tool", "decision", "patterns", NULL};
    char where[32], buf[64];
    snprintf(where, sizeof(where), "rules[%zu]", i);
    if (m->type != YAML_MAPPING_NODE)
        return fail(ps, m, "%s: expected a mapping {tool, decision, patterns}, got %s", where,
                    shown(m, buf, sizeof(buf)));
    if (check_keys(ps, m, where, keys, "tool, decision, patterns") != 0)
        return -1;
    yaml_node_t *tool = get(ps, m, "tool"), *decision = get(ps, m, "decision");
    if (!tool || !decision)
        return fail(ps, m,
                    "%s: a rule needs a tool (a glob, or \"*\") and a decision (allow, ask "
                    "or deny)",
                    where);
    const char *t = scalar(tool);
    if (!t || !*t || strlen(t) > WK_POLICY_MAX_TOOL)
        return fail(ps, tool, "%s.tool: expected a glob of tool names of 1..%d bytes, got %s",
                    where, WK_POLICY_MAX_TOOL, shown(tool, buf, sizeof(buf)));
    r->tool = ag_xstrdup(t);
    char key[48];
    snprintf(key, sizeof(key), "%s.decision", where);
    if (parse_decision(ps, decision, key, &r->decision) != 0)
        return -1;
    yaml_node_t *patterns = get(ps, m, "patterns");
    snprintf(key, sizeof(key), "%s.patterns", where);
    return patterns ? parse_patterns(ps, patterns, key, r) : 0;
}

static int parse_rules(struct parse *ps, const yaml_node_t *n)
{
    char buf[64];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ps, n, "rules: expected a list of rules {tool, decision, patterns}, got %s",
                    shown(n, buf, sizeof(buf)));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > WK_POLICY_MAX_RULES)
        return fail(ps, n, "rules has %zu rules; the limit is %d", count, WK_POLICY_MAX_RULES);
    ps->p->rules = ag_xcalloc(count ? count : 1, sizeof(*ps->p->rules));
    for (size_t i = 0; i < count; i++) {
        /* Counted before it is parsed, so that a half-read rule is freed with the rest. */
        struct wk_policy_rule *r = &ps->p->rules[ps->p->nrules++];
        if (parse_rule(ps, node(ps, n->data.sequence.items.start[i]), i, r) != 0)
            return -1;
    }
    return 0;
}

static int parse_root(struct parse *ps)
{
    static const char *const keys[] = {"rules", "default", NULL};
    yaml_node_t *root = yaml_document_get_root_node(&ps->doc);
    char buf[64];
    if (!root) /* an empty file: no rules, every call allowed */
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return fail(ps, root, "expected a mapping with rules and default, got %s",
                    shown(root, buf, sizeof(buf)));
    if (check_keys(ps, root, "", keys, "rules, default") != 0)
        return -1;
    yaml_node_t *n = get(ps, root, "rules");
    if (n && parse_rules(ps, n) != 0)
        return -1;
    n = get(ps, root, "default");
    return n ? parse_decision(ps, n, "default", &ps->p->default_decision) : 0;
}

static FILE *open_file(const char *path, struct ag_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read policy file '%s': %s", path,
                   strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        ag_err_set(err, AG_INVALID_ARGUMENT, "cannot read policy file '%s': not a regular file",
                   path);
        fclose(f);
        return NULL;
    }
    return f;
}

struct wk_policy *wk_policy_load(const char *path, struct ag_err *err)
{
    FILE *f = open_file(path, err);
    if (!f)
        return NULL;
    struct parse ps = {.path = path, .p = ag_xcalloc(1, sizeof(*ps.p)), .err = err};
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
    if (rc != 0) {
        wk_policy_free(ps.p);
        return NULL;
    }
    return ps.p;
}
