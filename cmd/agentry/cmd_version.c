/* cmd/agentry/cmd_version.c - 'agentry version': the version this binary was built as (the
 * AGENTRY_VERSION compile definition, from CMake's project version) and the git revision it was
 * built from (AGENTRY_GIT_REV in the generated agentry_version.h: the short hash, "-dirty" when
 * tracked files had changes, "unknown" for a build outside git; cmd/agentry/version.cmake). It
 * talks to no hub. */
#include <stdio.h>

#include "agentry_version.h"
#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/xalloc.h"

int cli_cmd_version(int argc, char **argv)
{
    bool json = false;
    const struct ag_flag flags[] = {
        {"json", 0, AG_FLAG_BOOL, &json, NULL, "print JSON", 0, 0},
    };
    const struct ag_cmd_help help = {
        "agentry version [--json]",
        "Print the version of this agentry binary and the git revision it was built from.",
        "agentry version --json",
    };
    size_t npos;
    int rc;
    if (!cli_parse("version", &help, flags, AG_ARRAY_SIZE(flags), argc, argv, NULL, 0, &npos, &rc))
        return rc;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "version", AGENTRY_VERSION);
        cJSON_AddStringToObject(o, "git", AGENTRY_GIT_REV);
        cli_print_json(stdout, o, false);
    } else {
        printf("agentry %s (git %s)\n", AGENTRY_VERSION, AGENTRY_GIT_REV);
    }
    return CLI_OK;
}
