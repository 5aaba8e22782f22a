/* common/rpc/core.c - see core.h. State: gRPC's log function pointer, set on every init (the same
 * value each time, so concurrent inits agree). */
#include "common/rpc/core.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <openssl/crypto.h>

#include "common/log.h"

static const char *severity_name(gpr_log_severity s)
{
    switch (s) {
    case GPR_LOG_SEVERITY_DEBUG:
        return "debug";
    case GPR_LOG_SEVERITY_INFO:
        return "info";
    default:
        return "error";
    }
}

/* gRPC's messages are about its internals (an address already in use, a peer that reset): the
 * caller turns what matters into an error of its own, so these are for debugging only. */
static void log_to_ag(gpr_log_func_args *a)
{
    ag_log_debug("grpc.log", "severity=%s file=%s:%d msg=%s", severity_name(a->severity),
                 a->file ? a->file : "", a->line, ag_log_q(a->message));
}

void rpc_core_init(void)
{
    /* A CLI that gives up on a deadline exits while gRPC may still be in a TLS handshake on one
     * of its threads; OpenSSL's own atexit clean-up would free what that thread is using. The
     * process is ending anyway: leave OpenSSL's state to the kernel. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    gpr_set_log_function(log_to_ag);
    grpc_init();
}

void rpc_core_shutdown(void)
{
    grpc_shutdown();
}
