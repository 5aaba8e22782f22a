/* hub/audit.h - the audit log: one JSON line per state-changing call and per denial, appended to
 * a file that rotates by size (agentry hub --audit-log FILE).
 *
 * A line: {"time":"2026-11-30T10:00:00.123Z","identity":"user/alice","role":"operator",
 * "rpc":"KillAgent","agent_id":"01..","namespace":"team-a","decision":"allow","code":"OK",
 * "reason":"...","peer":"ipv4:10.0.0.7:51234"}; empty fields are left out.
 *
 * Rotation: before a line would take the file past max_bytes, FILE becomes FILE.1 (FILE.1
 * becomes FILE.2, ... up to FILE.<keep>, the oldest dropped) and a new FILE starts. Each line is
 * one write(2) on an O_APPEND descriptor, so a reader (tail -F) never sees half a line. A write
 * that fails (disk full) is counted and logged once per failure streak; the call it records is
 * not failed for it.
 *
 * Threads: any; one mutex. */
#ifndef AGENTRY_HUB_AUDIT_H
#define AGENTRY_HUB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hub_audit;

struct hub_audit_opts {
    const char *path;
    size_t max_bytes; /* 0: 64 MiB */
    unsigned keep;    /* rotated files kept; 0: 5 */
};

struct hub_audit_rec {
    int64_t time_ns; /* 0: now */
    const char *identity, *role, *rpc, *agent_id, *namespace_, *decision, *code, *reason, *peer;
};

/* Opens (creates, 0640) path for appending. NULL with err if it cannot. */
struct hub_audit *hub_audit_open(const struct hub_audit_opts *o, struct ag_err *err);
void hub_audit_write(struct hub_audit *a, const struct hub_audit_rec *r);
/* Lines that could not be written so far. */
uint64_t hub_audit_failures(struct hub_audit *a);
void hub_audit_close(struct hub_audit *a); /* NULL is a no-op */

#endif
