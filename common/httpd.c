/* common/httpd.c - see httpd.h. */
#include "common/httpd.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* "host:port", "[v6]:port" or ":port" (every interface) to a bound, listening socket. */
int ag_httpd_listen(const char *addr, const char *what, int *port, struct ag_err *err)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1])
        return ag_err_set(err, AG_INVALID_ARGUMENT,
                          "%s address '%s' is not host:port (e.g. 127.0.0.1:PORT)", what, addr);
    char host[256];
    size_t hl = (size_t)(colon - addr);
    const char *h = addr;
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']')
        h++, hl -= 2;
    if (hl >= sizeof(host))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s address '%s' is too long", what, addr);
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int gai = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai);
    if (gai != 0)
        return ag_err_set(err, AG_INVALID_ARGUMENT, "%s address '%s': %s", what, addr,
                          gai_strerror(gai));
    int fd = -1, saved = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return ag_err_set(err, AG_UNAVAILABLE, "cannot serve %s on '%s': %s", what, addr,
                          strerror(saved));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}
