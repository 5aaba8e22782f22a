/* TEMPORARY: stubs for subcommands not written yet. Delete a stub when its file lands. */
#include <stdio.h>
#include "cmd/agentry/cli.h"
#define STUB(n) int cli_cmd_##n(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "error: '%s' is not implemented yet\n", #n); return CLI_FAIL; }
STUB(hub) STUB(node) STUB(spawn) STUB(send) STUB(invoke) STUB(trace) STUB(ps) STUB(get) STUB(kill) STUB(bench) STUB(version)
