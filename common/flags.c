/* common/flags.c - the flag table parser and help printer (see flags.h).
 *
 * One pass over argv. A token is a flag if it starts with '-' and is not "-" alone; everything
 * else is positional, so flags and arguments mix freely. "--help"/"-h" anywhere before "--" wins
 * over every other check: a user asking for help should get it even with a typo elsewhere.
 * A value-taking flag takes the next token as its value unless that token is itself one of this
 * command's flags ("--hub --json" is a missing value, not a hub named "--json"); "--name=value"
 * always works for values that start with '-'. Errors are one line, INVALID_ARGUMENT.
 * Environment variables are applied before argv, and only to flags argv does not name, so a
 * repeatable flag given on the command line replaces its variable's items instead of adding. */
#include "common/flags.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define FLAGS_HELP_COL 28 /* help text starts here unless the flag column is wider */
#define FLAGS_WIDTH 80    /* help is wrapped to fit a standard terminal */

void ag_strlist_release(struct ag_strlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void strlist_push(struct ag_strlist *l, const char *s, size_t len)
{
    l->items = ag_xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
    l->items[l->n++] = ag_xstrndup(s, len);
}

/* --- values ---------------------------------------------------------------------------------- */

static const struct {
    const char *unit;
    int64_t ms;
} duration_units[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
    {"d", 24 * 60 * 60 * 1000}, /* retention is said in days (agentry hub --retention 30d) */
};

/* Why a duration was refused; each reason has its own message. */
enum duration_fault {
    DURATION_OK,
    DURATION_MALFORMED,
    DURATION_NO_UNIT, /* the whole value is one number, like "5": seconds or milliseconds? */
};

#define DURATION_WANT "want a duration like 250ms, 5s, 2m or 1h"

/* One "<number>[.<fraction>]<unit>" term; advances *s past it. A number without a unit is
 * consumed with *had_unit false and *ms unset: the caller decides what that means. */
static int duration_term(const char **s, int64_t *ms, bool *had_unit)
{
    const char *p = *s;
    int64_t whole = 0, frac = 0, frac_div = 1;
    if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > INT64_MAX / 100000000)
            return -1; /* far beyond any sane duration; keeps the arithmetic below in range */
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++)
            if (frac_div < 1000000000) {
                frac = frac * 10 + (*p - '0');
                frac_div *= 10;
            }
    }
    size_t ulen = strspn(p, "abcdefghijklmnopqrstuvwxyz");
    int64_t unit = 0;
    for (size_t i = 0; i < AG_ARRAY_SIZE(duration_units); i++)
        if (ulen == strlen(duration_units[i].unit) && strncmp(p, duration_units[i].unit, ulen) == 0)
            unit = duration_units[i].ms;
    if (ulen > 0 && unit == 0)
        return -1;
    *had_unit = ulen > 0;
    if (*had_unit)
        *ms = whole * unit + frac * unit / frac_div;
    *s = p + ulen;
    return 0;
}

/* A bare number used to mean milliseconds, so "bench --duration 5" ran for 5 ms and a node with
 * "--handshake-timeout 1" gave up on every Register after 1 ms and reconnected forever. Now only
 * "0" may omit its unit, as in Go's time.ParseDuration (so etcdctl's flags): zero is zero in
 * every unit, while any other bare number is a guess we would get wrong for someone. */
static enum duration_fault duration_scan(const char *s, int64_t *ms)
{
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return DURATION_OK;
    }
    const char *p = s;
    int64_t total = 0;
    while (*p) {
        const char *term = p;
        int64_t v;
        bool had_unit;
        if (duration_term(&p, &v, &had_unit) < 0)
            return DURATION_MALFORMED;
        if (!had_unit) /* "5" and "1.5" lack a unit; "5s10" and "1." are just wrong */
            return term == s && *p == '\0' && isdigit((unsigned char)p[-1]) ? DURATION_NO_UNIT
                                                                            : DURATION_MALFORMED;
        if (total > INT64_MAX - v)
            return DURATION_MALFORMED;
        total += v;
    }
    if (p == s)
        return DURATION_MALFORMED; /* empty */
    *ms = total;
    return DURATION_OK;
}

int ag_duration_parse(const char *s, int64_t *ms, struct ag_err *err)
{
    switch (duration_scan(s, ms)) {
    case DURATION_OK:
        return 0;
    case DURATION_NO_UNIT:
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid duration '%s': missing unit (want %ss, %sms, 2m or 1h)", s, s,
                          s);
    case DURATION_MALFORMED:
        break;
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid duration '%s': " DURATION_WANT, s);
}

int ag_labels_parse(const char *s, struct ag_strlist *l, struct ag_err *err)
{
    /* Check everything first so that a bad list appends nothing. */
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (len > 0 && (!eq || eq == p))
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "invalid label '%.*s': want key=value with a non-empty key", (int)len,
                              p);
        p += len + (p[len] == ',');
    }
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            strlist_push(l, p, len);
        p += len + (p[len] == ',');
    }
    return 0;
}

/* --- quantities ------------------------------------------------------------------------------ */

/* digits[.digits] followed by a suffix from units (each with its multiplier), into *out rounded
 * up. false if malformed, the suffix unknown, or the value over INT64_MAX. */
struct quantity_unit {
    const char *suffix;
    int64_t mult;
};

static bool quantity_scan(const char *s, const struct quantity_unit *units, size_t nunits,
                          int64_t *out)
{
    const char *p = s;
    int64_t whole = 0, frac = 0, scale = 1;
    if (!isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > (INT64_MAX - 9) / 10)
            return false;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return false;
        for (; isdigit((unsigned char)*p); p++) {
            if (scale <= INT64_MAX / 100) { /* digits past 18 do not change the result */
                frac = frac * 10 + (*p - '0');
                scale *= 10;
            }
        }
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        int64_t m = units[i].mult;
        if (whole > INT64_MAX / m)
            return false;
        /* frac/scale * m, rounded up, without overflow: scale and m are powers of 10 or 2. */
        long double part = (long double)frac * (long double)m / (long double)scale;
        int64_t up = (int64_t)part + ((long double)(int64_t)part < part);
        if (whole * m > INT64_MAX - up)
            return false;
        *out = whole * m + up;
        return true;
    }
    return false;
}

static const struct quantity_unit cpu_units[] = {{"m", 1}, {"", 1000}};

static const struct quantity_unit byte_units[] = {
    {"", 1},
    {"k", 1000},
    {"M", 1000 * 1000},
    {"G", INT64_C(1000) * 1000 * 1000},
    {"T", INT64_C(1000) * 1000 * 1000 * 1000},
    {"P", INT64_C(1000) * 1000 * 1000 * 1000 * 1000},
    {"E", INT64_C(1000) * 1000 * 1000 * 1000 * 1000 * 1000},
    {"Ki", INT64_C(1) << 10},
    {"Mi", INT64_C(1) << 20},
    {"Gi", INT64_C(1) << 30},
    {"Ti", INT64_C(1) << 40},
    {"Pi", INT64_C(1) << 50},
    {"Ei", INT64_C(1) << 60},
};

#define CPU_WANT "want millicores like 500m, or cores like 2 or 1.5"
#define BYTES_WANT "want bytes like 1000, 512Mi, 4Gi or 1G"

int ag_cpu_parse(const char *s, int64_t *milli, struct ag_err *err)
{
    if (quantity_scan(s, cpu_units, AG_ARRAY_SIZE(cpu_units), milli))
        return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid cpu '%s': " CPU_WANT, s);
}

int ag_bytes_parse(const char *s, int64_t *bytes, struct ag_err *err)
{
    if (quantity_scan(s, byte_units, AG_ARRAY_SIZE(byte_units), bytes))
        return 0;
    return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid memory '%s': " BYTES_WANT, s);
}

/* A cpu or memory flag, its maximum (when set) checked, the flag named in the message. */
static int parse_quantity(const struct ag_flag *f, const char *v, struct ag_err *err)
{
    bool cpu = f->type == AG_FLAG_CPU;
    int64_t q;
    bool ok = cpu ? quantity_scan(v, cpu_units, AG_ARRAY_SIZE(cpu_units), &q)
                  : quantity_scan(v, byte_units, AG_ARRAY_SIZE(byte_units), &q);
    if (!ok)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid value '%s' for --%s: %s", v, f->name,
                          cpu ? CPU_WANT : BYTES_WANT);
    if (f->max && q > f->max)
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid value '%s' for --%s: the limit is %lld%s", v, f->name,
                          (long long)f->max, cpu ? "m" : " bytes");
    *(int64_t *)f->dest = q;
    return 0;
}

static int parse_int(const struct ag_flag *f, const char *v, struct ag_err *err)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    bool ranged = f->min != 0 || f->max != 0;
    if (*v == '\0' || *end != '\0' || errno == ERANGE || isspace((unsigned char)*v) ||
        (ranged && (n < f->min || n > f->max))) {
        if (ranged && f->max == INT64_MAX)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "invalid value '%s' for --%s: want an integer >= %lld", v, f->name,
                              (long long)f->min);
        if (ranged)
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "invalid value '%s' for --%s: want an integer in %lld..%lld", v,
                              f->name, (long long)f->min, (long long)f->max);
        return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid value '%s' for --%s: want an integer",
                          v, f->name);
    }
    *(int64_t *)f->dest = n;
    return 0;
}

static int parse_bool(const struct ag_flag *f, const char *v, struct ag_err *err)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no",
                                                                                "off"};
    for (size_t i = 0; i < AG_ARRAY_SIZE(yes); i++) {
        if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
            *(bool *)f->dest = strcmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid value '%s' for --%s: want true or false",
                      v, f->name);
}

/* As ag_duration_parse, with the flag named in the message. */
/* ms in its largest whole unit ("36500d", "90s", "250ms"), for messages. */
static const char *duration_text(int64_t ms, char *buf, size_t cap)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < AG_ARRAY_SIZE(units); i++)
        if (ms % units[i].ms == 0) {
            snprintf(buf, cap, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return buf;
        }
    snprintf(buf, cap, "%" PRId64 "ms", ms);
    return buf;
}

void ag_flags_push(struct ag_flag *flags, size_t *n, size_t cap, struct ag_flag f)
{
    if (*n >= cap) {
        fprintf(stderr, "error: too many flags for one command at --%s (raise its table's size)\n",
                f.name);
        abort();
    }
    flags[(*n)++] = f;
}

static int parse_duration(const struct ag_flag *f, const char *v, struct ag_err *err)
{
    int64_t ms;
    switch (duration_scan(v, &ms)) {
    case DURATION_OK:
        if (f->max > 0 && ms > f->max) {
            char most[32];
            return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid value '%s' for --%s: at most %s",
                              v, f->name, duration_text(f->max, most, sizeof(most)));
        }
        *(int64_t *)f->dest = ms;
        return 0;
    case DURATION_NO_UNIT:
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "invalid value '%s' for --%s: missing unit (want %ss, %sms, 2m or 1h)", v,
                          f->name, v, v);
    case DURATION_MALFORMED:
        break;
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT, "invalid value '%s' for --%s: " DURATION_WANT, v,
                      f->name);
}

static int set_value(const struct ag_flag *f, const char *v, struct ag_err *err)
{
    switch (f->type) {
    case AG_FLAG_BOOL:
        return parse_bool(f, v, err);
    case AG_FLAG_STR:
        *(const char **)f->dest = v;
        return 0;
    case AG_FLAG_INT:
        return parse_int(f, v, err);
    case AG_FLAG_DURATION:
        return parse_duration(f, v, err);
    case AG_FLAG_CPU:
    case AG_FLAG_BYTES:
        return parse_quantity(f, v, err);
    case AG_FLAG_LIST:
        for (const char *p = v; *p;) {
            size_t len = strcspn(p, ",");
            if (len > 0) /* "a,,b" and a trailing comma add nothing */
                strlist_push(f->dest, p, len);
            p += len + (p[len] == ',');
        }
        return 0;
    }
    return ag_err_set(err, AG_INTERNAL, "flag --%s has an unknown type", f->name);
}

/* --- lookup ---------------------------------------------------------------------------------- */

static const struct ag_flag *find_long(const struct ag_flag *flags, size_t n, const char *name,
                                       size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

static const struct ag_flag *find_short(const struct ag_flag *flags, size_t n, char c)
{
    for (size_t i = 0; c && i < n; i++)
        if (flags[i].short_name == c)
            return &flags[i];
    return NULL;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* True if token a would be read as one of this command's flags. */
static bool is_known_flag(const struct ag_flag *flags, size_t n, const char *a)
{
    if (a[0] != '-' || a[1] == '\0')
        return false;
    if (is_help(a) || strcmp(a, "--") == 0)
        return true;
    if (a[1] != '-')
        return a[2] == '\0' && find_short(flags, n, a[1]);
    const char *name = a + 2;
    size_t len = strcspn(name, "=");
    if (find_long(flags, n, name, len))
        return true;
    if (len > 3 && strncmp(name, "no-", 3) == 0) {
        const struct ag_flag *f = find_long(flags, n, name + 3, len - 3);
        return f && f->type == AG_FLAG_BOOL;
    }
    return false;
}

/* --- parsing --------------------------------------------------------------------------------- */

struct flags_state {
    const char *cmd;
    const struct ag_flag *flags;
    size_t nflags;
    int argc;
    char **argv;
    int i; /* index of the token being parsed */
};

static int unknown_flag(const struct flags_state *st, const char *tok, size_t len,
                        struct ag_err *err)
{
    return ag_err_set(err, AG_INVALID_ARGUMENT, "unknown flag '%.*s' (see 'agentry %s --help')",
                      (int)len, tok, st->cmd);
}

/* The flag f was given as `shown` with no inline value: bools are set, others take argv[i+1]. */
static int take_value(struct flags_state *st, const struct ag_flag *f, const char *shown,
                      struct ag_err *err)
{
    if (f->type == AG_FLAG_BOOL) {
        *(bool *)f->dest = true;
        return 0;
    }
    if (st->i + 1 >= st->argc || is_known_flag(st->flags, st->nflags, st->argv[st->i + 1]))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "flag '%s' needs a value", shown);
    st->i++;
    return set_value(f, st->argv[st->i], err);
}

static int parse_long(struct flags_state *st, const char *tok, struct ag_err *err)
{
    const char *name = tok + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct ag_flag *f = find_long(st->flags, st->nflags, name, len);
    if (f)
        return eq ? set_value(f, eq + 1, err) : take_value(st, f, tok, err);
    if (len > 3 && strncmp(name, "no-", 3) == 0) {
        f = find_long(st->flags, st->nflags, name + 3, len - 3);
        if (f && f->type == AG_FLAG_BOOL && !eq) {
            *(bool *)f->dest = false;
            return 0;
        }
        if (f && f->type == AG_FLAG_BOOL)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "flag '--%.*s' takes no value", (int)len,
                              name);
    }
    return unknown_flag(st, tok, len + 2, err);
}

static int parse_short(struct flags_state *st, const char *tok, struct ag_err *err)
{
    const struct ag_flag *f = tok[2] == '\0' ? find_short(st->flags, st->nflags, tok[1]) : NULL;
    if (!f)
        return unknown_flag(st, tok, strlen(tok), err);
    return take_value(st, f, tok, err);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (is_help(argv[i]))
            return true;
    return false;
}

static int add_positional(const struct flags_state *st, char *arg, char **pos, size_t max_pos,
                          size_t *npos, struct ag_err *err)
{
    if (*npos >= max_pos)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "too many arguments (see 'agentry %s --help')",
                          st->cmd);
    pos[(*npos)++] = arg;
    return 0;
}

/* --- the environment ------------------------------------------------------------------------ */

char *ag_flags_env_name(char *buf, size_t cap, const char *prefix, const char *name)
{
    int n = snprintf(buf, cap, "%s%s", prefix, name);
    for (char *p = buf + strlen(prefix); n > 0 && *p; p++)
        *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    return buf;
}

/* True if argv (before "--") names f in any form. Exact, because a token that is one of the
 * command's flags is never taken as another flag's value (see take_value). */
static bool given_in_argv(const struct ag_flag *f, int argc, char **argv)
{
    size_t flen = strlen(f->name);
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0')
            continue;
        if (a[1] != '-') {
            if (a[2] == '\0' && f->short_name && a[1] == f->short_name)
                return true;
            continue;
        }
        const char *name = a + 2;
        size_t len = strcspn(name, "=");
        if (len == flen && strncmp(name, f->name, len) == 0)
            return true;
        if (f->type == AG_FLAG_BOOL && len == flen + 3 && strncmp(name, "no-", 3) == 0 &&
            strncmp(name + 3, f->name, flen) == 0)
            return true;
    }
    return false;
}

static bool skipped(const struct ag_flags_env *env, const char *name)
{
    for (const char *const *s = env->skip; s && *s; s++)
        if (strcmp(*s, name) == 0)
            return true;
    return false;
}

static int apply_env(const struct ag_flags_env *env, const struct ag_flag *flags, size_t nflags,
                     int argc, char **argv, struct ag_err *err)
{
    for (size_t i = 0; i < nflags; i++) {
        const struct ag_flag *f = &flags[i];
        if (skipped(env, f->name) || given_in_argv(f, argc, argv))
            continue;
        char var[128];
        const char *v = getenv(ag_flags_env_name(var, sizeof(var), env->prefix, f->name));
        if (!v || !*v)
            continue;
        if (set_value(f, v, err) != 0) {
            ag_err_prefix(err, "%s", var);
            return -1;
        }
    }
    return 0;
}

int ag_flags_parse(const char *cmd, const struct ag_flag *flags, size_t nflags, int argc,
                   char **argv, char **pos, size_t max_pos, size_t *npos, struct ag_err *err)
{
    return ag_flags_parse_env(cmd, NULL, flags, nflags, argc, argv, pos, max_pos, npos, err);
}

int ag_flags_parse_env(const char *cmd, const struct ag_flags_env *env, const struct ag_flag *flags,
                       size_t nflags, int argc, char **argv, char **pos, size_t max_pos,
                       size_t *npos, struct ag_err *err)
{
    struct flags_state st = {cmd, flags, nflags, argc, argv, 0};
    *npos = 0;
    if (wants_help(argc, argv))
        return 1;
    if (env && apply_env(env, flags, nflags, argc, argv, err) != 0)
        return -1;
    bool only_pos = false;
    for (; st.i < argc; st.i++) {
        char *a = argv[st.i];
        int rc;
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (only_pos || a[0] != '-' || a[1] == '\0')
            rc = add_positional(&st, a, pos, max_pos, npos, err);
        else if (a[1] == '-')
            rc = parse_long(&st, a, err);
        else
            rc = parse_short(&st, a, err);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* --- help ------------------------------------------------------------------------------------ */

static const char *default_metavar(enum ag_flag_type t)
{
    switch (t) {
    case AG_FLAG_INT:
        return "N";
    case AG_FLAG_DURATION:
        return "DURATION";
    case AG_FLAG_CPU:
        return "CPU";
    case AG_FLAG_BYTES:
        return "BYTES";
    case AG_FLAG_LIST:
        return "LIST";
    default:
        return "VALUE";
    }
}

/* "  -f, --follow" or "      --from N" into buf. */
static int flag_left(char *buf, size_t cap, const struct ag_flag *f)
{
    char sh[8] = "    ";
    if (f->short_name)
        snprintf(sh, sizeof(sh), "-%c, ", f->short_name);
    if (f->type == AG_FLAG_BOOL)
        return snprintf(buf, cap, "  %s--%s", sh, f->name);
    return snprintf(buf, cap, "  %s--%s %s", sh, f->name,
                    f->metavar ? f->metavar : default_metavar(f->type));
}

static size_t count_newlines(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n';
    return k;
}

/* Print text word-wrapped to FLAGS_WIDTH, the cursor being at column `col` already and
 * continuation lines indented by `indent`. Text is reflowed: runs of spaces and single newlines
 * are one space (so pre-wrapped and unwrapped strings both come out right), and a blank line
 * starts a new paragraph. */
static void print_wrapped(FILE *out, const char *text, int col, int indent)
{
    const char *p = text + strspn(text, " \n");
    while (*p) {
        int word = (int)strcspn(p, " \n");
        if (col > indent && col + 1 + word > FLAGS_WIDTH) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", word, p);
        col += word;
        p += word;
        size_t sep = strspn(p, " \n");
        if (count_newlines(p, sep) >= 2 && p[sep]) {
            fprintf(out, "\n\n%*s", indent, "");
            col = indent;
        }
        p += sep;
    }
    fputc('\n', out);
}

static void print_indented(FILE *out, const char *text)
{
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        fprintf(out, "  %.*s\n", (int)len, p);
        p += len + (p[len] == '\n');
    }
}

void ag_flags_print_help(FILE *out, const struct ag_cmd_help *help, const struct ag_flag *flags,
                         size_t nflags)
{
    fprintf(out, "usage: %s\n\n", help->usage);
    print_wrapped(out, help->summary, 0, 0);
    fprintf(out, "\nflags:\n");
    char left[160];
    for (size_t i = 0; i < nflags; i++) {
        int w = flag_left(left, sizeof(left), &flags[i]);
        if (w + 2 > FLAGS_HELP_COL)
            fprintf(out, "%s\n%*s", left, FLAGS_HELP_COL, "");
        else
            fprintf(out, "%-*s", FLAGS_HELP_COL, left);
        print_wrapped(out, flags[i].help, FLAGS_HELP_COL, FLAGS_HELP_COL);
    }
    fprintf(out, "%-*s%s\n", FLAGS_HELP_COL, "  -h, --help", "show this help");
    if (help->example) {
        fprintf(out, "\nexample:\n");
        print_indented(out, help->example);
    }
}
