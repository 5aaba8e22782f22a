/* common/id.h - time-ordered unique ids for agents (and anything else the hub names).
 * 16 lowercase Crockford base32 characters: 48 bits of Unix milliseconds then a 30-bit counter
 * that starts at a random value each millisecond and only grows within it. Ids made by one
 * process sort in creation order, which ListAgents' page tokens rely on. Thread-safe. */
#ifndef AGENTRY_COMMON_ID_H
#define AGENTRY_COMMON_ID_H

#include <stdbool.h>

#define AG_ID_LEN 16

void ag_id_new(char out[AG_ID_LEN + 1]);
/* True if s looks like an id from ag_id_new (length and alphabet). */
bool ag_id_valid(const char *s);

#endif
