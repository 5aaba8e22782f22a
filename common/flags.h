/* common/flags.h - command-line flags as a table.
 *
 * A command declares its flags as rows (name, type, destination, help) and calls ag_flags_parse.
 * Accepted forms: --name value, --name=value, -x value (short), -x for bools, --no-name for
 * bools, "--" ends flags. Flags and positional arguments may be mixed. Errors are one line a user
 * can act on, e.g. "unknown flag '--frm' (see 'agentry trace --help')".
 *
 * A command may also take its flags from the environment (ag_flags_parse_env): --http-listen is
 * then AGENTRY_HTTP_LISTEN too, a flag given on the command line winning over the variable. */
#ifndef AGENTRY_COMMON_FLAGS_H
#define AGENTRY_COMMON_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

enum ag_flag_type {
    AG_FLAG_BOOL,     /* bool *dest */
    AG_FLAG_STR,      /* const char **dest (borrowed from argv) */
    AG_FLAG_INT,      /* int64_t *dest; decimal, range-checked by min/max */
    AG_FLAG_DURATION, /* int64_t *dest in milliseconds; see ag_duration_parse; max checked if set */
    AG_FLAG_LIST,     /* struct ag_strlist *dest; repeatable, and comma-separated values split */
    AG_FLAG_CPU,      /* int64_t *dest in millicores; see ag_cpu_parse; max checked if set */
    AG_FLAG_BYTES,    /* int64_t *dest in bytes; see ag_bytes_parse; max checked if set */
};

/* Values of a repeatable flag; items borrowed from argv (or owned copies after splitting). */
struct ag_strlist {
    char **items; /* owned array; strings owned */
    size_t n;
};
void ag_strlist_release(struct ag_strlist *l);

struct ag_flag {
    const char *name; /* long name without "--", e.g. "capacity" */
    char short_name;  /* 0 if none */
    enum ag_flag_type type;
    void *dest;
    const char *metavar; /* e.g. "N", "ADDR"; shown in help */
    const char *help;    /* one line; the default is stated here */
    int64_t min, max;    /* for AG_FLAG_INT (both 0: no range check) */
};

struct ag_cmd_help {
    const char *usage;   /* "agentry trace [flags] AGENT_ID" */
    const char *summary; /* one paragraph */
    const char *example; /* may be NULL */
};

/* Append row f to flags[*n] (cap rows in all). A table too small for its rows is a programming
 * error, caught by any --help run: it aborts, naming the row. */
void ag_flags_push(struct ag_flag *flags, size_t *n, size_t cap, struct ag_flag f);

/* Parse argv[0..argc) (argv[0] is the first argument, not the program). Positional arguments are
 * written to pos (up to max_pos; more is an error) and counted in *npos.
 * Returns 0 on success, 1 if --help/-h was given (nothing else is checked then), -1 with err
 * (INVALID_ARGUMENT) on a bad flag or value. `cmd` names the command in messages ("trace"). */
int ag_flags_parse(const char *cmd, const struct ag_flag *flags, size_t nflags, int argc,
                   char **argv, char **pos, size_t max_pos, size_t *npos, struct ag_err *err);

/* Which environment variables stand for a command's flags. */
struct ag_flags_env {
    const char *prefix;      /* "AGENTRY_": --http-listen is AGENTRY_HTTP_LISTEN */
    const char *const *skip; /* names of flags never read from the environment; NULL-terminated,
                              * or NULL for none */
};
/* ag_flags_parse, but first every flag that argv does not give (in any form: --name, --name=V,
 * --no-name, -x) takes the value of its variable when that is set and not empty, parsed as the
 * flag's value would be (a list variable is comma-separated). So the order is flag > environment
 * > the default already in *dest. A malformed value is an INVALID_ARGUMENT error naming the
 * variable: "AGENTRY_THREADS: invalid value 'x' for --threads: want an integer in 0..256".
 * --help still wins over everything, a bad variable included. env NULL: as ag_flags_parse. */
int ag_flags_parse_env(const char *cmd, const struct ag_flags_env *env, const struct ag_flag *flags,
                       size_t nflags, int argc, char **argv, char **pos, size_t max_pos,
                       size_t *npos, struct ag_err *err);
/* The variable that stands for flag `name` under prefix, e.g. "AGENTRY_HTTP_LISTEN", into buf;
 * returns buf. */
char *ag_flags_env_name(char *buf, size_t cap, const char *prefix, const char *name);
/* Print usage, summary, flags (with metavars and help) and example to out. */
void ag_flags_print_help(FILE *out, const struct ag_cmd_help *help, const struct ag_flag *flags,
                         size_t nflags);
/* A duration in milliseconds: "250ms", "5s", "1.5s", "2m", "1h", "30d" (a day is 24h), sums
 * like "1m30s", and "0".
 * -1 with err (INVALID_ARGUMENT), *ms untouched, if malformed or if a number other than "0" has
 * no unit: "5" is refused with "missing unit", since it used to mean 5 ms to us and means 5 s to
 * most readers. */
int ag_duration_parse(const char *s, int64_t *ms, struct ag_err *err);
/* CPU as Kubernetes writes it, in millicores: "500m" (500), "2" (2000 cores' worth), "1.5"
 * (1500); a fraction of a millicore rounds up. -1 with err (INVALID_ARGUMENT), *milli untouched,
 * if malformed, negative or too large for an int64. */
int ag_cpu_parse(const char *s, int64_t *milli, struct ag_err *err);
/* Memory as Kubernetes writes it, in bytes: "1000", decimal suffixes k M G T P E ("1G" is 10^9),
 * binary ones Ki Mi Gi Ti Pi Ei ("4Gi" is 4 * 2^30), fractions allowed ("1.5Gi"; a fraction of a
 * byte rounds up). -1 with err (INVALID_ARGUMENT), *bytes untouched, if malformed or too large. */
int ag_bytes_parse(const char *s, int64_t *bytes, struct ag_err *err);
/* "k=v,k2=v2" -> appends "k=v" items to l after checking each has a non-empty key. */
int ag_labels_parse(const char *s, struct ag_strlist *l, struct ag_err *err);

#endif
