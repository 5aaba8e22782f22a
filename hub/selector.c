/* hub/selector.c - parse and match ListAgents label selectors (see selector.h).
 *
 * The grammar is Kubernetes' equality-based one, read term by term: a term is the text between
 * two commas, so a value can hold anything but a comma, and a malformed term can be named in the
 * error exactly as the client wrote it. Pure functions: no locks, no globals. */
#include "hub/selector.h"

#include <ctype.h>
#include <string.h>

#include "common/utf8.h"

/* How much of a bad term an error quotes: the message buffer is 256 bytes. */
#define SHOWN_TERM_MAX 96

static bool is_space(char c)
{
    return isspace((unsigned char)c) != 0;
}

static bool is_key_byte(char c)
{
    return c != ',' && c != '=' && c != '!' && !is_space(c);
}

static void trim(const char **p, size_t *len)
{
    while (*len && is_space(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len && is_space((*p)[*len - 1]))
        (*len)--;
}

/* A prefix of at most max bytes that does not end inside a UTF-8 sequence, so that the status
 * message stays valid UTF-8 for clients that decode it. */
static int shown_len(const char *p, size_t len)
{
    if (len <= SHOWN_TERM_MAX)
        return (int)len;
    return (int)ag_utf8_prefix(p, SHOWN_TERM_MAX);
}

static int malformed(const char *term, size_t len, struct ag_err *err)
{
    return ag_err_set(err, AG_INVALID_ARGUMENT,
                      "label_selector term '%.*s%s' is malformed: want key=value, key==value, "
                      "key!=value, key or !key",
                      shown_len(term, len), term, (size_t)shown_len(term, len) < len ? "..." : "");
}

static size_t key_span(const char *p, size_t len)
{
    size_t k = 0;
    while (k < len && is_key_byte(p[k]))
        k++;
    return k;
}

/* "!key": the whole rest must be one key. */
static int parse_absent(const char *term, size_t len, struct ag_arena *ar,
                        struct hub_selector_term *t, struct ag_err *err)
{
    const char *k = term + 1;
    size_t klen = len - 1;
    trim(&k, &klen);
    if (klen == 0 || key_span(k, klen) != klen)
        return malformed(term, len, err);
    t->op = HUB_SELECTOR_ABSENT;
    t->key = ag_arena_strndup(ar, k, klen);
    t->value = NULL;
    return 0;
}

/* One trimmed, non-empty term. */
static int parse_term(const char *term, size_t len, struct ag_arena *ar,
                      struct hub_selector_term *t, struct ag_err *err)
{
    if (term[0] == '!')
        return parse_absent(term, len, ar, t, err);
    size_t klen = key_span(term, len);
    if (klen == 0)
        return malformed(term, len, err);
    const char *rest = term + klen;
    size_t rlen = len - klen;
    trim(&rest, &rlen);
    t->key = ag_arena_strndup(ar, term, klen);
    t->value = NULL;
    if (rlen == 0) {
        t->op = HUB_SELECTOR_EXISTS;
        return 0;
    }
    size_t oplen;
    if (rlen >= 2 && memcmp(rest, "!=", 2) == 0) {
        t->op = HUB_SELECTOR_NE;
        oplen = 2;
    } else if (rlen >= 2 && memcmp(rest, "==", 2) == 0) {
        t->op = HUB_SELECTOR_EQ;
        oplen = 2;
    } else if (rest[0] == '=') {
        t->op = HUB_SELECTOR_EQ;
        oplen = 1;
    } else {
        return malformed(term, len, err); /* "a b", "k!v", "k!" */
    }
    const char *v = rest + oplen;
    size_t vlen = rlen - oplen;
    trim(&v, &vlen);
    t->value = ag_arena_strndup(ar, v, vlen);
    return 0;
}

static size_t count_terms(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

int hub_selector_parse(const char *text, struct ag_arena *arena, struct hub_selector *sel,
                       struct ag_err *err)
{
    sel->terms = NULL;
    sel->n = 0;
    size_t total = text ? strlen(text) : 0;
    if (total > HUB_SELECTOR_MAX_BYTES)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "label_selector is %zu bytes; the limit is %d",
                          total, HUB_SELECTOR_MAX_BYTES);
    /* Checked first: the error messages below quote the client's text. */
    if (!ag_utf8_valid(text ? text : "", total))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "label_selector is not valid UTF-8");
    const char *all = text ? text : "";
    size_t alen = total;
    trim(&all, &alen);
    if (alen == 0)
        return 0;
    struct hub_selector_term *terms = ag_arena_alloc(arena, count_terms(text) * sizeof(*terms));
    size_t n = 0;
    for (const char *p = text;;) {
        size_t len = strcspn(p, ",");
        const char *term = p;
        size_t tlen = len;
        trim(&term, &tlen);
        if (tlen == 0)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "label_selector term %zu is empty: remove the extra ','", n + 1);
        if (parse_term(term, tlen, arena, &terms[n], err) != 0)
            return -1;
        n++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    sel->terms = terms;
    sel->n = n;
    return 0;
}

/* The label's value, or NULL when the agent has no such label. */
static const char *label_value(Agentry__V1__AgentSpec__LabelsEntry *const *labels, size_t n,
                               const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (labels[i]->key && strcmp(labels[i]->key, key) == 0)
            v = labels[i]->value ? labels[i]->value : "";
    return v;
}

bool hub_selector_match(const struct hub_selector *sel,
                        Agentry__V1__AgentSpec__LabelsEntry *const *labels, size_t n_labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        const struct hub_selector_term *t = &sel->terms[i];
        const char *v = label_value(labels, n_labels, t->key);
        bool ok;
        switch (t->op) {
        case HUB_SELECTOR_EQ:
            ok = v && strcmp(v, t->value) == 0;
            break;
        case HUB_SELECTOR_NE:
            ok = !v || strcmp(v, t->value) != 0;
            break;
        case HUB_SELECTOR_EXISTS:
            ok = v != NULL;
            break;
        default: /* HUB_SELECTOR_ABSENT */
            ok = v == NULL;
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}
