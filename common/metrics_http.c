/* common/metrics_http.c - GET /metrics over libmicrohttpd (see metrics_http.h).
 * The listening socket comes from common/httpd.h. */
#include "common/metrics_http.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/httpd.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

struct ag_metrics_http {
    struct MHD_Daemon *d;
    struct ag_metrics *reg;
    int fd;
    int port;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload, (void)upload_size, (void)con_cls;
    struct ag_metrics_http *s = cls;
    struct MHD_Response *resp;
    unsigned code = MHD_HTTP_OK;
    const char *type = "text/plain; version=0.0.4; charset=utf-8";
    if (strcmp(url, "/metrics") != 0) {
        static const char body[] = "not found: the metrics are at /metrics\n";
        code = MHD_HTTP_NOT_FOUND;
        resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                               MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
               strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char body[] = "method not allowed: use GET\n";
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
        resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                               MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    } else {
        struct ag_strbuf b = {0};
        ag_metrics_render(s->reg, &b);
        resp = MHD_create_response_from_buffer(
            b.len, b.s ? b.s : (char *)"", b.s ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp)
            free(b.s);
    }
    if (!resp)
        return MHD_NO;
    if (code != MHD_HTTP_OK)
        type = "text/plain; charset=utf-8";
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

struct ag_metrics_http *ag_metrics_http_start(const char *addr, struct ag_metrics *reg,
                                              struct ag_err *err)
{
    int port = 0;
    int fd = ag_httpd_listen(addr, "metrics", &port, err);
    if (fd < 0)
        return NULL;
    struct ag_metrics_http *s = ag_xcalloc(1, sizeof(*s));
    s->reg = reg;
    s->fd = fd;
    s->port = port;
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, answer,
                            s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_END);
    if (!s->d) {
        close(fd);
        free(s);
        ag_err_set(err, AG_UNAVAILABLE,
                   "cannot serve metrics on '%s': the HTTP server did not start", addr);
        return NULL;
    }
    return s;
}

int ag_metrics_http_port(const struct ag_metrics_http *s)
{
    return s->port;
}

void ag_metrics_http_stop(struct ag_metrics_http *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d); /* does not close a socket it was given */
    close(s->fd);
    free(s);
}
