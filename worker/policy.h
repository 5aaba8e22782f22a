/* worker/policy.h - permission rules, and the node's policy file (agent-node --policy FILE).
 *
 * A rule says allow, ask or deny for the calls of the tools its glob names, optionally only for
 * calls whose subject (wk_tool.subject: shell's command, http_request's host, the file tools'
 * path) one of its fnmatch patterns matches. A list of rules decides by its first matching rule.
 * A spec's rules (AgentSpec.permissions, worker/run_spec.h) and the node's policy are such lists;
 * the node's also has a default for calls no rule matches, and is a ceiling over the spec's
 * (wk_run_spec_decide). The file's format is docs/permissions.md:
 *
 *     rules:                       # first match wins; at most 256
 *       - tool: shell              # a glob of tool names
 *         decision: ask            # allow | deny | ask
 *         patterns: ["git push*"]  # optional: at most 32, each 1..1024 bytes
 *     default: allow               # no rule matches: allow (the default) | ask | deny
 *
 * Threads: a policy is loaded before the node starts and read-only afterwards, so any thread may
 * read it; it lives as long as the node (cmd/agentry/cmd_node.c frees it after the node). */
#ifndef AGENTRY_WORKER_POLICY_H
#define AGENTRY_WORKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Ordered from the most to the least permissive: the stricter of two is the larger. */
enum wk_decision { WK_DECISION_ALLOW, WK_DECISION_ASK, WK_DECISION_DENY };

#define WK_POLICY_MAX_RULES 256
#define WK_POLICY_MAX_PATTERNS 32 /* per rule, as a spec's (hub/validate.c) */
#define WK_POLICY_MAX_PATTERN 1024
#define WK_POLICY_MAX_TOOL 64

struct wk_policy_rule {
    char *tool; /* owned; a glob of tool names: "*" for every tool, "mcp__fs__*" */
    enum wk_decision decision;
    char **patterns; /* owned; fnmatch globs against the call's subject */
    size_t npatterns;
};

struct wk_policy {
    struct wk_policy_rule *rules; /* owned */
    size_t nrules;
    enum wk_decision default_decision; /* for a call no rule matches */
};

/* "allow", "ask" or "deny". */
const char *wk_policy_decision_name(enum wk_decision d);
/* false if s is none of the three names. */
bool wk_policy_decision_parse(const char *s, enum wk_decision *out);

/* The first of rules[0, n) that matches a call of tool name whose subject is subject (NULL: the
 * call has none, and only rules without patterns match it), its index in *at; NULL if none. */
const struct wk_policy_rule *wk_policy_rules_first(const struct wk_policy_rule *rules, size_t n,
                                                   const char *name, const char *subject,
                                                   size_t *at);
/* How a rule reads in a message: "ask shell 'git push*'" (owned); more patterns add ", ...". */
char *wk_policy_rule_describe(const struct wk_policy_rule *r);
void wk_policy_rules_free(struct wk_policy_rule *rules, size_t n);

/* The policy in the YAML file at path; NULL with INVALID_ARGUMENT and one line naming the file,
 * the line and the problem ("policy.yaml:4: rules[1].decision: expected allow, ask or deny, got
 * 'maybe'") if it cannot be read or is not such a file. */
struct wk_policy *wk_policy_load(const char *path, struct ag_err *err);
/* NULL is a no-op. */
void wk_policy_free(struct wk_policy *p);

#endif
