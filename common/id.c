/* common/id.c - see id.h. State: the last (ms, counter) pair, under a mutex. */
#include "common/id.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"

#define ID_COUNTER_LIMIT (1u << 30) /* the 30 bits the last 6 characters hold */

static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_ms;
static uint32_t id_counter;

void ag_id_new(char out[AG_ID_LEN + 1])
{
    uint64_t ms = (uint64_t)(ag_now_unix_ns() / 1000000);
    pthread_mutex_lock(&id_lock);
    if (ms <= id_last_ms) {
        /* Same millisecond (or the wall clock stepped back): keep ordering by counting on; past
         * the counter's 30 bits, borrow the next millisecond. */
        ms = id_last_ms;
        if (++id_counter >= ID_COUNTER_LIMIT) {
            ms = ++id_last_ms;
            id_counter = 0;
        }
    } else {
        uint32_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
            r = (uint32_t)ag_now_mono_ns();
        id_last_ms = ms;
        id_counter = r % (ID_COUNTER_LIMIT / 2); /* random start, half the range left to count */
    }
    uint32_t counter = id_counter;
    pthread_mutex_unlock(&id_lock);

    /* 80 bits -> 16 chars of 5 bits, most significant first. */
    uint64_t hi = ms & 0xffffffffffffULL; /* 48 bits -> chars 0..9 (50 bits, top 2 zero) */
    for (int i = 9; i >= 0; i--) {
        out[i] = alphabet[hi & 31];
        hi >>= 5;
    }
    uint32_t lo = counter; /* 30 bits -> chars 10..15 */
    for (int i = 15; i >= 10; i--) {
        out[i] = alphabet[lo & 31];
        lo >>= 5;
    }
    out[AG_ID_LEN] = '\0';
}

bool ag_id_valid(const char *s)
{
    if (strlen(s) != AG_ID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!strchr(alphabet, *p))
            return false;
    return true;
}
