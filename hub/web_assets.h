/* hub/web_assets.h - the dashboard's files, built into the hub: the table the build generates
 * (hub/web_assets.cmake writes it into the build directory from hub/dashboard/ and the Debian
 * packages' libraries) and hub/web.c serves. Read-only data, any thread. */
#ifndef AGENTRY_HUB_WEB_ASSETS_H
#define AGENTRY_HUB_WEB_ASSETS_H

#include <stddef.h>

struct hub_web_asset {
    const char *path; /* the URL path: "/static/index.html", "/static/lib/d3.min.js" */
    const unsigned char *data;
    size_t len;
};

/* Ends with a row whose path is NULL. */
extern const struct hub_web_asset hub_web_assets[];
/* A hash of every file's content, quoted: the ETag of each of them (a new build, a new tag). */
extern const char hub_web_assets_etag[];

#endif
