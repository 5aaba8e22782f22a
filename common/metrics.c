/* common/metrics.c - the metrics registry and its text exposition (see metrics.h).
 *
 * Series of a family live in a fixed array of max_series pointers. Readers load the published
 * count (acquire) and scan it without a lock; a writer adding a series fills the next slot under
 * the family's lock and then publishes the count (release), so a reader never sees a slot before
 * its series is complete. Series are freed only with the registry.
 *
 * A histogram series keeps one atomic count per bucket (not cumulative: one increment per
 * observation) and the sum; rendering accumulates the buckets, so the +Inf bucket and _count
 * always agree even while observations race the scrape. */
#include "common/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/xalloc.h"

#define METRICS_MAX_SCRAPE_FNS 16

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct ag_metric {
    struct ag_metric_family *f;
    char *values[AG_METRICS_MAX_LABELS];
    _Atomic int64_t v;          /* counter or gauge */
    _Atomic uint64_t sum;       /* histogram, observed units */
    _Atomic uint64_t buckets[]; /* histogram: nbounds + 1 (the last is +Inf) */
};

struct ag_metric_family {
    struct ag_metric_family *next;
    enum metric_type type;
    char *name, *help;
    char *labels[AG_METRICS_MAX_LABELS];
    size_t nlabels;
    double scale;
    double bounds[AG_METRICS_MAX_BUCKETS];       /* rendered units */
    uint64_t raw_bounds[AG_METRICS_MAX_BUCKETS]; /* observed units: v <= raw_bounds[i] */
    size_t nbounds;
    size_t max_series;
    pthread_mutex_t lock; /* adding a series */
    _Atomic size_t n;
    struct ag_metric **series; /* max_series slots */
};

struct ag_metrics {
    pthread_mutex_t lock; /* registration and scraping */
    struct ag_metric_family *head, **tail;
    struct {
        ag_metrics_scrape_fn *fn;
        void *arg;
    } scrape[METRICS_MAX_SCRAPE_FNS];
    size_t nscrape;
};

struct ag_metrics *ag_metrics_new(void)
{
    struct ag_metrics *r = ag_xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->tail = &r->head;
    return r;
}

void ag_metrics_free(struct ag_metrics *r)
{
    if (!r)
        return;
    for (struct ag_metric_family *f = r->head, *next; f; f = next) {
        next = f->next;
        for (size_t i = 0; i < atomic_load(&f->n); i++) {
            for (size_t j = 0; j < f->nlabels; j++)
                free(f->series[i]->values[j]);
            free(f->series[i]);
        }
        for (size_t j = 0; j < f->nlabels; j++)
            free(f->labels[j]);
        free(f->name);
        free(f->help);
        pthread_mutex_destroy(&f->lock);
        free(f->series);
        free(f);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || (colon && *s == ':')))
            return false;
    return true;
}

static struct ag_metric_family *family_new(struct ag_metrics *r, enum metric_type type,
                                           const char *name, const char *help,
                                           const char *const *labels)
{
    if (!r)
        return NULL;
    if (!name_ok(name, true)) {
        fprintf(stderr, "metrics: invalid metric name '%s'\n", name ? name : "(null)");
        abort();
    }
    struct ag_metric_family *f = ag_xcalloc(1, sizeof(*f));
    f->type = type;
    f->name = ag_xstrdup(name);
    f->help = ag_xstrdup(help ? help : "");
    for (; labels && labels[f->nlabels]; f->nlabels++) {
        if (f->nlabels == AG_METRICS_MAX_LABELS || !name_ok(labels[f->nlabels], false) ||
            strcmp(labels[f->nlabels], "le") == 0) {
            fprintf(stderr, "metrics: bad label '%s' on '%s'\n", labels[f->nlabels], name);
            abort();
        }
        f->labels[f->nlabels] = ag_xstrdup(labels[f->nlabels]);
    }
    f->scale = 1;
    f->max_series = AG_METRICS_MAX_SERIES;
    f->series = ag_xcalloc(f->max_series, sizeof(*f->series));
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_lock(&r->lock);
    *r->tail = f;
    r->tail = &f->next;
    pthread_mutex_unlock(&r->lock);
    return f;
}

struct ag_metric_family *ag_metrics_counter(struct ag_metrics *r, const char *name,
                                            const char *help, const char *const *labels)
{
    return family_new(r, METRIC_COUNTER, name, help, labels);
}

struct ag_metric_family *ag_metrics_gauge(struct ag_metrics *r, const char *name, const char *help,
                                          const char *const *labels)
{
    return family_new(r, METRIC_GAUGE, name, help, labels);
}

struct ag_metric_family *ag_metrics_histogram(struct ag_metrics *r, const char *name,
                                              const char *help, const char *const *labels,
                                              const double *bounds, size_t nbounds, double scale)
{
    if (!r)
        return NULL;
    if (nbounds > AG_METRICS_MAX_BUCKETS || scale <= 0) {
        fprintf(stderr, "metrics: bad buckets on '%s'\n", name);
        abort();
    }
    struct ag_metric_family *f = family_new(r, METRIC_HISTOGRAM, name, help, labels);
    f->scale = scale;
    f->nbounds = nbounds;
    for (size_t i = 0; i < nbounds; i++) {
        if (i && !(bounds[i] > bounds[i - 1])) {
            fprintf(stderr, "metrics: buckets of '%s' are not ascending\n", name);
            abort();
        }
        f->bounds[i] = bounds[i];
        double raw = floor(bounds[i] / scale + 1e-9);
        f->raw_bounds[i] = raw < 0 ? 0 : raw >= 1.8e19 ? UINT64_MAX : (uint64_t)raw;
    }
    return f;
}

void ag_metrics_set_scale(struct ag_metric_family *f, double scale)
{
    if (f && f->type != METRIC_HISTOGRAM)
        f->scale = scale;
}

void ag_metrics_set_max_series(struct ag_metric_family *f, size_t max)
{
    if (!f || atomic_load(&f->n))
        return;
    f->max_series = !max                            ? AG_METRICS_MAX_SERIES
                    : max < AG_METRICS_SERIES_LIMIT ? max
                                                    : AG_METRICS_SERIES_LIMIT;
    f->series = ag_xrealloc(f->series, f->max_series * sizeof(*f->series));
}

static bool series_is(const struct ag_metric *m, const char *const *values)
{
    for (size_t j = 0; j < m->f->nlabels; j++)
        if (strcmp(m->values[j], values[j] ? values[j] : "") != 0)
            return false;
    return true;
}

static struct ag_metric *series_find(struct ag_metric_family *f, const char *const *values,
                                     size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (series_is(f->series[i], values))
            return f->series[i];
    return NULL;
}

struct ag_metric *ag_metrics_at(struct ag_metric_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    static const char *const none[AG_METRICS_MAX_LABELS] = {0};
    if (!values)
        values = none;
    struct ag_metric *m = series_find(f, values, atomic_load_explicit(&f->n, memory_order_acquire));
    if (m)
        return m;
    pthread_mutex_lock(&f->lock);
    size_t n = atomic_load_explicit(&f->n, memory_order_relaxed);
    m = series_find(f, values, n);
    if (!m && n + 1 >= f->max_series) {
        /* The last slot is kept for "other": everything past the bound lands there. */
        static const char *const other[AG_METRICS_MAX_LABELS] = {"other", "other", "other"};
        values = other;
        m = series_find(f, values, n);
    }
    if (!m) {
        size_t nb = f->type == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
        m = ag_xcalloc(1, sizeof(*m) + nb * sizeof(m->buckets[0]));
        m->f = f;
        for (size_t j = 0; j < f->nlabels; j++)
            m->values[j] = ag_xstrdup(values[j] ? values[j] : "");
        f->series[n] = m;
        atomic_store_explicit(&f->n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&f->lock);
    return m;
}

void ag_metrics_inc(struct ag_metric *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->v, 1, memory_order_relaxed);
}

void ag_metrics_add(struct ag_metric *m, int64_t n)
{
    if (m)
        atomic_fetch_add_explicit(&m->v, n, memory_order_relaxed);
}

void ag_metrics_set(struct ag_metric *m, int64_t v)
{
    if (m)
        atomic_store_explicit(&m->v, v, memory_order_relaxed);
}

int64_t ag_metrics_value(const struct ag_metric *m)
{
    return m ? atomic_load_explicit(&m->v, memory_order_relaxed) : 0;
}

void ag_metrics_observe(struct ag_metric *m, uint64_t v)
{
    if (!m)
        return;
    const struct ag_metric_family *f = m->f;
    size_t i = 0;
    while (i < f->nbounds && v > f->raw_bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum, v, memory_order_relaxed);
}

void ag_metrics_on_scrape(struct ag_metrics *r, ag_metrics_scrape_fn *fn, void *arg)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    if (r->nscrape == METRICS_MAX_SCRAPE_FNS) {
        fprintf(stderr, "metrics: more than %d scrape callbacks\n", METRICS_MAX_SCRAPE_FNS);
        abort();
    }
    r->scrape[r->nscrape].fn = fn;
    r->scrape[r->nscrape++].arg = arg;
    pthread_mutex_unlock(&r->lock);
}

/* --- the process's own series ---------------------------------------------------------------- */

struct process_series {
    struct ag_metric *rss, *vsize, *fds, *max_fds, *threads, *cpu, *start;
    long page, ticks;
};

static void process_scrape(void *arg)
{
    struct process_series *p = arg;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* The command name may hold spaces and parentheses: fields count from its last ')'. */
        char *s = strrchr(buf, ')');
        unsigned long long utime, stime, start, vsize;
        long long threads, rss;
        if (s && sscanf(s + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                        "%lld %*d %llu %llu %lld",
                        &utime, &stime, &threads, &start, &vsize, &rss) == 6) {
            ag_metrics_set(p->cpu, (int64_t)(utime + stime));
            ag_metrics_set(p->threads, threads);
            ag_metrics_set(p->vsize, (int64_t)vsize);
            ag_metrics_set(p->rss, rss * p->page);
            /* Boot time plus the start in ticks since boot. */
            FILE *st = fopen("/proc/stat", "r");
            char line[256];
            while (st && fgets(line, sizeof(line), st)) {
                long long btime;
                if (sscanf(line, "btime %lld", &btime) == 1) {
                    ag_metrics_set(p->start, btime * 1000 + (int64_t)start * 1000 / p->ticks);
                    break;
                }
            }
            if (st)
                fclose(st);
        }
    }
    int64_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        closedir(d);
        ag_metrics_set(p->fds, fds - 1); /* not counting the one opendir holds */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ag_metrics_set(p->max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur);
}

void ag_metrics_add_process(struct ag_metrics *r)
{
    if (!r)
        return;
    static struct process_series p; /* one process, one set, whichever registry asks */
    p.page = sysconf(_SC_PAGESIZE);
    p.ticks = sysconf(_SC_CLK_TCK);
    p.rss = ag_metrics_at(ag_metrics_gauge(r, "process_resident_memory_bytes",
                                           "Resident memory size in bytes.", NULL),
                          NULL);
    p.vsize = ag_metrics_at(
        ag_metrics_gauge(r, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL),
        NULL);
    p.fds = ag_metrics_at(
        ag_metrics_gauge(r, "process_open_fds", "Number of open file descriptors.", NULL), NULL);
    p.max_fds = ag_metrics_at(
        ag_metrics_gauge(r, "process_max_fds", "Maximum number of open file descriptors.", NULL),
        NULL);
    p.threads = ag_metrics_at(
        ag_metrics_gauge(r, "process_threads", "Number of OS threads in the process.", NULL), NULL);
    struct ag_metric_family *cpu = ag_metrics_counter(
        r, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", NULL);
    ag_metrics_set_scale(cpu, 1.0 / (double)p.ticks);
    p.cpu = ag_metrics_at(cpu, NULL);
    struct ag_metric_family *start = ag_metrics_gauge(
        r, "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.", NULL);
    ag_metrics_set_scale(start, 1e-3);
    p.start = ag_metrics_at(start, NULL);
    ag_metrics_on_scrape(r, process_scrape, &p);
}

/* --- the text format ------------------------------------------------------------------------- */

static void put(struct ag_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct ag_strbuf *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(buf)) {
        ag_strbuf_add(b, buf, (size_t)n);
        return;
    }
    char *big = ag_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ag_strbuf_add(b, big, (size_t)n);
    free(big);
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void put_escaped(struct ag_strbuf *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            ag_strbuf_add(b, "\\\\", 2);
        else if (*s == '\n')
            ag_strbuf_add(b, "\\n", 2);
        else if (quote && *s == '"')
            ag_strbuf_add(b, "\\\"", 2);
        else
            ag_strbuf_add(b, s, 1);
    }
}

/* The shortest decimal that reads back as v ("0.005", not "0.0050000000000000001"). */
static void put_double(struct ag_strbuf *b, double v)
{
    if (isinf(v)) {
        put(b, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        put(b, "NaN");
        return;
    }
    char buf[40];
    if (v == floor(v) && fabs(v) < 1e15) { /* "10", not "1e+01" */
        put(b, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    put(b, "%s", buf);
}

/* raw * scale; divided by 1/scale when that is a whole number (1e-9: 10^9), which is exact
 * where the product is not (2010000001 ns is 2.010000001, not 2.0100000010000003). */
static double scaled(double raw, double scale)
{
    double inv = round(1 / scale);
    return scale < 1 && fabs(1 / scale - inv) < 1e-6 ? raw / inv : raw * scale;
}

static void put_value(struct ag_strbuf *b, const struct ag_metric_family *f, int64_t raw)
{
    if (f->scale == 1)
        put(b, "%" PRId64, raw);
    else
        put_double(b, scaled((double)raw, f->scale));
}

/* name{a="x",b="y"[,le="..."]} */
static void put_series_name(struct ag_strbuf *b, const struct ag_metric *m, const char *suffix,
                            const double *le)
{
    const struct ag_metric_family *f = m->f;
    put(b, "%s%s", f->name, suffix);
    if (!f->nlabels && !le)
        return;
    ag_strbuf_add(b, "{", 1);
    for (size_t j = 0; j < f->nlabels; j++) {
        put(b, "%s%s=\"", j ? "," : "", f->labels[j]);
        put_escaped(b, m->values[j], true);
        ag_strbuf_add(b, "\"", 1);
    }
    if (le) {
        put(b, "%sle=\"", f->nlabels ? "," : "");
        put_double(b, *le);
        ag_strbuf_add(b, "\"", 1);
    }
    ag_strbuf_add(b, "}", 1);
}

static void render_family(struct ag_strbuf *b, const struct ag_metric_family *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    put(b, "# HELP %s ", f->name);
    put_escaped(b, f->help, false);
    put(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
    size_t n = atomic_load_explicit(&f->n, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        const struct ag_metric *m = f->series[i];
        if (f->type != METRIC_HISTOGRAM) {
            put_series_name(b, m, "", NULL);
            ag_strbuf_add(b, " ", 1);
            put_value(b, f, atomic_load_explicit(&m->v, memory_order_relaxed));
            ag_strbuf_add(b, "\n", 1);
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= f->nbounds; k++) {
            cum += atomic_load_explicit(&m->buckets[k], memory_order_relaxed);
            double le = k < f->nbounds ? f->bounds[k] : INFINITY;
            put_series_name(b, m, "_bucket", &le);
            put(b, " %" PRIu64 "\n", cum);
        }
        put_series_name(b, m, "_sum", NULL);
        ag_strbuf_add(b, " ", 1);
        put_double(b,
                   scaled((double)atomic_load_explicit(&m->sum, memory_order_relaxed), f->scale));
        ag_strbuf_add(b, "\n", 1);
        put_series_name(b, m, "_count", NULL);
        put(b, " %" PRIu64 "\n", cum);
    }
}

void ag_metrics_render(struct ag_metrics *r, struct ag_strbuf *out)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nscrape; i++)
        r->scrape[i].fn(r->scrape[i].arg);
    for (const struct ag_metric_family *f = r->head; f; f = f->next)
        render_family(out, f);
    pthread_mutex_unlock(&r->lock);
}
