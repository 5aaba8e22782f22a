/* hub/selector.h - label selectors for ListAgents, as in Kubernetes' equality-based selectors.
 *
 * A selector is comma-separated terms that must all hold (an empty selector matches every
 * agent). Each term, with the spaces around it and around its operator trimmed, is one of:
 *   key=value, key==value   the label is present with exactly that value
 *   key!=value              the label is absent, or present with another value
 *   key                     the label is present (any value)
 *   !key                    the label is absent
 * Values are compared literally, byte for byte; they cannot contain ',' (it ends the term) and
 * may be empty ("key=" matches a label whose value is ""). A key is one or more bytes other
 * than ',', '=', '!' and spaces. Anything else is malformed, and the error names the term.
 *
 * Owns: nothing beyond the arena the caller passes. Pure functions, any thread. */
#ifndef AGENTRY_HUB_SELECTOR_H
#define AGENTRY_HUB_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "agentry/v1/types.pb-c.h"
#include "common/arena.h"
#include "common/err.h"

#define HUB_SELECTOR_MAX_BYTES 4096 /* hub.proto: ListAgentsRequest.label_selector */

enum hub_selector_op {
    HUB_SELECTOR_EQ,     /* key=value, key==value */
    HUB_SELECTOR_NE,     /* key!=value */
    HUB_SELECTOR_EXISTS, /* key */
    HUB_SELECTOR_ABSENT, /* !key */
};

struct hub_selector_term {
    enum hub_selector_op op;
    const char *key;   /* borrowed from the arena */
    const char *value; /* borrowed from the arena; NULL for EXISTS and ABSENT */
};

struct hub_selector {
    struct hub_selector_term *terms; /* in the arena; NULL when n == 0 */
    size_t n;
};

/* Parse text (NULL or "" or only spaces: the empty selector) into *sel, its strings in arena.
 * -1 with INVALID_ARGUMENT when text is over HUB_SELECTOR_MAX_BYTES or a term is malformed;
 * *sel is then the empty selector. */
int hub_selector_parse(const char *text, struct ag_arena *arena, struct hub_selector *sel,
                       struct ag_err *err);

/* Do the labels satisfy every term? A key that appears twice counts with its last value, as a
 * protobuf map decoder would keep it. */
bool hub_selector_match(const struct hub_selector *sel,
                        Agentry__V1__AgentSpec__LabelsEntry *const *labels, size_t n_labels);

#endif
