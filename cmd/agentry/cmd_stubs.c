/* TEMPORARY: stubs for subcommands not written yet. Delete a stub when its file lands. */
#include <stdio.h>
#include "cmd/agentry/cli.h"
#define STUB(n) int cli_cmd_##n(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "error: '%s' is not implemented yet\n", #n); return CLI_FAIL; }
STUB(node)
