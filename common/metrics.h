/* common/metrics.h - a small registry of Prometheus counters, gauges and histograms, rendered in
 * the text exposition format 0.0.4 (what GET /metrics serves, common/metrics_http.h).
 *
 * A family is a metric name with its help, type and label names (at most AG_METRICS_MAX_LABELS).
 * A series is one set of label values in a family. Label values must come from small fixed sets
 * (an RPC method, a status code, a tool or model name, an outcome, a state; never an agent id):
 * a family holds at most AG_METRICS_MAX_SERIES series unless told otherwise, and values beyond that
 * are counted in one series whose every label is "other", so a bug cannot grow memory without
 * bound.
 *
 * Values are integers, rendered times the family's `scale`: a latency histogram observes
 * nanoseconds with scale 1e-9 and renders seconds, the base unit.
 *
 * Threads: families are registered before anyone scrapes (typically at start-up, from one
 * thread). ag_metrics_at may be called from any thread: finding an existing series takes no lock,
 * a new one is made once under the family's lock. Updates (inc, add, set, observe) are single
 * atomic operations, allocate nothing, and accept a NULL series as a no-op, so code with metrics
 * turned off passes NULL. ag_metrics_render runs the scrape callbacks and renders under the
 * registry's scrape lock; one scrape at a time. */
#ifndef AGENTRY_COMMON_METRICS_H
#define AGENTRY_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

#define AG_METRICS_MAX_LABELS 3
#define AG_METRICS_MAX_SERIES 256    /* a family's default bound */
#define AG_METRICS_SERIES_LIMIT 4096 /* the most ag_metrics_set_max_series allows */
#define AG_METRICS_MAX_BUCKETS 24

struct ag_metrics;
struct ag_metric_family;
struct ag_metric;

/* Called at each scrape before rendering, to set gauges from state read then (for example the
 * agents by state, or the process's memory). Runs on the scraping thread. */
typedef void ag_metrics_scrape_fn(void *arg);

struct ag_metrics *ag_metrics_new(void);
/* Frees the registry and every family and series in it. NULL is a no-op. */
void ag_metrics_free(struct ag_metrics *r);

/* Registration. name must be a valid metric name, labels a NULL-terminated list (NULL: none);
 * both are copied. A bad name or too many labels is a programming error (abort). All return
 * NULL if r is NULL, so a process with metrics off registers nothing and updates nothing. */
struct ag_metric_family *ag_metrics_counter(struct ag_metrics *r, const char *name,
                                            const char *help, const char *const *labels);
struct ag_metric_family *ag_metrics_gauge(struct ag_metrics *r, const char *name, const char *help,
                                          const char *const *labels);
/* bounds: upper bounds of the buckets in rendered units (seconds for a latency), ascending;
 * +Inf is implicit. scale: rendered value per observed unit (1e-9 to observe nanoseconds). */
struct ag_metric_family *ag_metrics_histogram(struct ag_metrics *r, const char *name,
                                              const char *help, const char *const *labels,
                                              const double *bounds, size_t nbounds, double scale);
/* Rendered value per stored unit for a counter or gauge (default 1). Before scraping. */
void ag_metrics_set_scale(struct ag_metric_family *f, double scale);
/* The most series a family keeps before folding new label sets into "other" (default
 * AG_METRICS_MAX_SERIES, at most AG_METRICS_SERIES_LIMIT). Before any series exists. */
void ag_metrics_set_max_series(struct ag_metric_family *f, size_t max);

/* The series with these label values (one per label name, in order; NULL for a family without
 * labels), made on first use. NULL if f is NULL. A NULL value counts as "". */
struct ag_metric *ag_metrics_at(struct ag_metric_family *f, const char *const *values);

/* Counters only go up (inc, add); set is for a gauge, or a counter mirroring a total kept
 * elsewhere (the kernel's CPU time, a store's commit count). */
void ag_metrics_inc(struct ag_metric *m);
void ag_metrics_add(struct ag_metric *m, int64_t n);
void ag_metrics_set(struct ag_metric *m, int64_t v);
int64_t ag_metrics_value(const struct ag_metric *m);
/* Histograms: one observation, in observed units (nanoseconds for a latency). */
void ag_metrics_observe(struct ag_metric *m, uint64_t v);

/* Call fn(arg) at each scrape, in registration order. At most 16. */
void ag_metrics_on_scrape(struct ag_metrics *r, ag_metrics_scrape_fn *fn, void *arg);
/* Registers the process's own series, read from /proc/self at each scrape:
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds, process_threads, process_cpu_seconds_total, process_start_time_seconds. */
void ag_metrics_add_process(struct ag_metrics *r);

/* Appends every family in the text exposition format 0.0.4, in registration order, after running
 * the scrape callbacks. */
void ag_metrics_render(struct ag_metrics *r, struct ag_strbuf *out);

#endif
