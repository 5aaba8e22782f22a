/* common/metrics_http.h - the HTTP endpoint Prometheus scrapes: GET /metrics renders a registry
 * (common/metrics.h) in the text format 0.0.4; anything else is 404 (405 for another method).
 *
 * Served by libmicrohttpd on one internal thread of its own: a scrape renders on that thread,
 * so a slow scraper delays only other scrapes. No TLS and no authentication: bind it to an
 * address only the monitoring system reaches (docs/metrics.md). */
#ifndef AGENTRY_COMMON_METRICS_HTTP_H
#define AGENTRY_COMMON_METRICS_HTTP_H

#include "common/err.h"
#include "common/metrics.h"

struct ag_metrics_http;

/* Binds listen ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464", port 0 for any) and starts
 * serving reg, which must outlive the server. NULL with err: INVALID_ARGUMENT for an address
 * that does not parse, UNAVAILABLE when it cannot be bound (in use), saying which. */
struct ag_metrics_http *ag_metrics_http_start(const char *addr, struct ag_metrics *reg,
                                              struct ag_err *err);
/* The bound port (useful with port 0). */
int ag_metrics_http_port(const struct ag_metrics_http *s);
/* Stops serving and closes the socket; a scrape under way finishes first. NULL is a no-op. */
void ag_metrics_http_stop(struct ag_metrics_http *s);

#endif
