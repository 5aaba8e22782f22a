/* hub/reflect.c - see reflect.h. The embedded FileDescriptorSet is read with a minimal walk of
 * the protobuf wire format (the few fields of descriptor.proto that name things), which keeps
 * every file's bytes exactly as protoc wrote them, ready to send. Each request of a stream is
 * decoded with protobuf-c's own allocator and freed once answered, so a long stream does not
 * grow the call's arena. */
#include "hub/reflect.h"

#include <grpc/byte_buffer_reader.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

/* descriptor.proto's field numbers used here. */
enum {
    FDSET_FILE = 1,      /* FileDescriptorSet.file */
    FILE_NAME = 1,       /* FileDescriptorProto */
    FILE_PACKAGE = 2,    /* ... */
    FILE_DEPENDENCY = 3, /* ... */
    FILE_MESSAGE = 4,    /* ... */
    FILE_ENUM = 5,       /* ... */
    FILE_SERVICE = 6,    /* ... */
    MSG_NAME = 1,        /* DescriptorProto */
    MSG_NESTED = 3,      /* ... */
    MSG_ENUM = 4,        /* ... */
    ENUM_NAME = 1,       /* EnumDescriptorProto */
    SVC_NAME = 1,        /* ServiceDescriptorProto */
    SVC_METHOD = 2,      /* ... */
    METHOD_NAME = 1,     /* MethodDescriptorProto */
};

#define WIRE_VARINT 0
#define WIRE_I64 1
#define WIRE_LEN 2
#define WIRE_I32 5
#define REFLECT_NOT_FOUND 5 /* grpc status NOT_FOUND, in error_response */
#define REFLECT_INVALID 3   /* INVALID_ARGUMENT */

struct wire {
    const uint8_t *p, *end;
};

struct wire_field {
    uint32_t num;
    struct wire len; /* the payload of a LEN field */
};

struct rfile {
    char *name; /* owned */
    const uint8_t *data;
    size_t len;
    size_t *deps; /* owned: indices into files */
    size_t ndeps;
};

struct rsym {
    char *name; /* owned: fully qualified */
    size_t file;
    bool service;
};

struct hub_reflect {
    struct rfile *files;
    size_t nfiles;
    struct rsym *syms;
    size_t nsyms, cap_syms;
    struct rpc_method rows[HUB_REFLECT_NMETHODS];
};

/* --- the wire walk ---------------------------------------------------------------------------- */

static bool wire_varint(struct wire *w, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && w->p < w->end; shift += 7) {
        uint8_t b = *w->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The next field of w: 1 with *f (its payload if LEN; other kinds skipped over), 0 at the end,
 * -1 if malformed. */
static int wire_next(struct wire *w, struct wire_field *f)
{
    if (w->p == w->end)
        return 0;
    uint64_t key, v;
    if (!wire_varint(w, &key))
        return -1;
    f->num = (uint32_t)(key >> 3);
    f->len = (struct wire){NULL, NULL};
    switch (key & 7) {
    case WIRE_VARINT:
        return wire_varint(w, &v) ? 1 : -1;
    case WIRE_I64:
    case WIRE_I32: {
        size_t n = (key & 7) == WIRE_I64 ? 8 : 4;
        if ((size_t)(w->end - w->p) < n)
            return -1;
        w->p += n;
        return 1;
    }
    case WIRE_LEN:
        if (!wire_varint(w, &v) || v > (uint64_t)(w->end - w->p))
            return -1;
        f->len = (struct wire){w->p, w->p + v};
        w->p += v;
        return 1;
    default:
        return -1;
    }
}

static char *wire_str(const struct wire *w)
{
    size_t n = (size_t)(w->end - w->p);
    char *s = ag_xmalloc(n + 1);
    memcpy(s, w->p, n);
    s[n] = '\0';
    return s;
}

/* The name field (field 1, as in every descriptor kind used here) of a message, or NULL. */
static char *wire_name(struct wire w)
{
    struct wire_field f;
    while (wire_next(&w, &f) == 1)
        if (f.num == 1 && f.len.p)
            return wire_str(&f.len);
    return NULL;
}

/* --- the index -------------------------------------------------------------------------------- */

static void add_sym(struct hub_reflect *r, const char *scope, const char *name, size_t file,
                    bool service)
{
    if (r->nsyms == r->cap_syms) {
        r->cap_syms = r->cap_syms ? 2 * r->cap_syms : 256;
        r->syms = ag_xrealloc(r->syms, r->cap_syms * sizeof(*r->syms));
    }
    r->syms[r->nsyms++] = (struct rsym){.name = *scope ? ag_xasprintf("%s.%s", scope, name)
                                                       : ag_xstrdup(name),
                                        .file = file,
                                        .service = service};
}

/* A named descriptor (kind FILE_MESSAGE, FILE_ENUM, FILE_SERVICE, or 0 for a method) at scope:
 * its symbol, and for messages their nested messages and enums, for services their methods.
 * 0, or -1 if malformed. */
static int index_named(struct hub_reflect *r, const char *scope, struct wire w, size_t file,
                       int kind)
{
    char *name = wire_name(w);
    if (!name)
        return -1;
    add_sym(r, scope, name, file, kind == FILE_SERVICE);
    free(name);
    const char *full = r->syms[r->nsyms - 1].name;
    char *here = ag_xstrdup(full); /* r->syms may move while adding below */
    struct wire_field f;
    int rc = 0;
    while (rc == 0 && wire_next(&w, &f) == 1) {
        if (!f.len.p)
            continue;
        if (kind == FILE_MESSAGE && f.num == MSG_NESTED)
            rc = index_named(r, here, f.len, file, FILE_MESSAGE);
        else if (kind == FILE_MESSAGE && f.num == MSG_ENUM)
            rc = index_named(r, here, f.len, file, FILE_ENUM);
        else if (kind == FILE_SERVICE && f.num == SVC_METHOD)
            rc = index_named(r, here, f.len, file, 0);
    }
    free(here);
    return rc;
}

static int index_file(struct hub_reflect *r, size_t i, char ***deps, size_t *ndeps)
{
    struct rfile *fl = &r->files[i];
    struct wire w = {fl->data, fl->data + fl->len};
    struct wire_field f;
    char *pkg = NULL;
    int rc;
    while ((rc = wire_next(&w, &f)) == 1) { /* the package first: symbols need it */
        if (f.num == FILE_NAME && f.len.p && !fl->name)
            fl->name = wire_str(&f.len);
        else if (f.num == FILE_PACKAGE && f.len.p && !pkg)
            pkg = wire_str(&f.len);
        else if (f.num == FILE_DEPENDENCY && f.len.p) {
            *deps = ag_xrealloc(*deps, (*ndeps + 1) * sizeof(**deps));
            (*deps)[(*ndeps)++] = wire_str(&f.len);
        }
    }
    w = (struct wire){fl->data, fl->data + fl->len}; /* well-formed: the walk above went through */
    while (rc == 0 && wire_next(&w, &f) == 1)
        if (f.len.p && (f.num == FILE_MESSAGE || f.num == FILE_ENUM || f.num == FILE_SERVICE))
            rc = index_named(r, pkg ? pkg : "", f.len, i, (int)f.num);
    free(pkg);
    return rc < 0 || !fl->name ? -1 : 0;
}

static long find_file(const struct hub_reflect *r, const char *name)
{
    for (size_t i = 0; i < r->nfiles; i++)
        if (r->files[i].name && strcmp(r->files[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Each file's imports as indices: --include_imports put every one in the set. */
static int link_deps(struct hub_reflect *r, size_t i, char **deps, size_t ndeps)
{
    struct rfile *fl = &r->files[i];
    fl->deps = ag_xcalloc(ndeps + 1, sizeof(*fl->deps));
    for (size_t k = 0; k < ndeps; k++) {
        long d = find_file(r, deps[k]);
        if (d < 0)
            return -1;
        fl->deps[fl->ndeps++] = (size_t)d;
    }
    return 0;
}

struct hub_reflect *hub_reflect_new(struct ag_err *err)
{
    struct hub_reflect *r = ag_xcalloc(1, sizeof(*r));
    struct wire w = {hub_reflect_descriptor_set,
                     hub_reflect_descriptor_set + hub_reflect_descriptor_set_len};
    struct wire_field f;
    int rc;
    while ((rc = wire_next(&w, &f)) == 1) {
        if (f.num != FDSET_FILE || !f.len.p)
            continue;
        r->files = ag_xrealloc(r->files, (r->nfiles + 1) * sizeof(*r->files));
        r->files[r->nfiles++] = (struct rfile){.data = f.len.p,
                                               .len = (size_t)(f.len.end - f.len.p)};
    }
    char ***deps = ag_xcalloc(r->nfiles + 1, sizeof(*deps));
    size_t *ndeps = ag_xcalloc(r->nfiles + 1, sizeof(*ndeps));
    for (size_t i = 0; rc == 0 && i < r->nfiles; i++)
        rc = index_file(r, i, &deps[i], &ndeps[i]);
    for (size_t i = 0; rc == 0 && i < r->nfiles; i++)
        rc = link_deps(r, i, deps[i], ndeps[i]);
    for (size_t i = 0; i < r->nfiles; i++) {
        for (size_t k = 0; k < ndeps[i]; k++)
            free(deps[i][k]);
        free(deps[i]);
    }
    free(deps);
    free(ndeps);
    if (rc != 0) {
        hub_reflect_free(r);
        ag_err_set(err, AG_INTERNAL,
                   "the embedded protobuf descriptors do not parse (a build "
                   "problem: rebuild from a clean build directory)");
        return NULL;
    }
    return r;
}

void hub_reflect_free(struct hub_reflect *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfiles; i++) {
        free(r->files[i].name);
        free(r->files[i].deps);
    }
    for (size_t i = 0; i < r->nsyms; i++)
        free(r->syms[i].name);
    free(r->files);
    free(r->syms);
    free(r);
}

/* --- answering ---------------------------------------------------------------------------------- */

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

/* File i and everything it imports, transitively, each once, into out (marks: r->nfiles). */
static void closure(const struct hub_reflect *r, size_t i, bool *seen, ProtobufCBinaryData *out,
                    size_t *n)
{
    if (seen[i])
        return;
    seen[i] = true;
    out[(*n)++] = (ProtobufCBinaryData){.len = r->files[i].len,
                                        .data = (uint8_t *)r->files[i].data};
    for (size_t k = 0; k < r->files[i].ndeps; k++)
        closure(r, r->files[i].deps[k], seen, out, n);
}

static void set_error(refl_resp *out, Grpc__Reflection__V1__ErrorResponse *e, int code, char *msg)
{
    e->error_code = code;
    e->error_message = msg;
    out->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    out->error_response = e;
}

static long find_symbol(const struct hub_reflect *r, const char *name)
{
    if (*name == '.') /* a fully qualified name as descriptors write types: ".agentry.v1.X" */
        name++;
    for (size_t i = 0; i < r->nsyms; i++)
        if (strcmp(r->syms[i].name, name) == 0)
            return (long)r->syms[i].file;
    return -1;
}

/* Pack the answer to req. */
static grpc_byte_buffer *answer(const struct hub_reflect *r, const refl_req *req)
{
    refl_resp out = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    out.valid_host = req->host;
    out.original_request = (refl_req *)req;
    Grpc__Reflection__V1__ErrorResponse e = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fd =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse ls =
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse ext =
        GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    char msg[300];
    long file = -1;
    const char *what = NULL, *kind = NULL; /* a file or symbol asked for */
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
        ls.service = ag_xcalloc(r->nsyms + 1, sizeof(*ls.service));
        for (size_t i = 0; i < r->nsyms; i++) {
            if (!r->syms[i].service)
                continue;
            Grpc__Reflection__V1__ServiceResponse *s = ag_xmalloc(sizeof(*s));
            grpc__reflection__v1__service_response__init(s);
            s->name = r->syms[i].name;
            ls.service[ls.n_service++] = s;
        }
        out.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        out.list_services_response = &ls;
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        what = req->file_by_filename;
        kind = "file";
        file = find_file(r, what);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        what = req->file_containing_symbol;
        kind = "symbol";
        file = find_symbol(r, what);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        snprintf(msg, sizeof(msg), "no extension %d of '%.200s': the hub's protos define none",
                 (int)req->file_containing_extension->extension_number,
                 req->file_containing_extension->containing_type);
        set_error(&out, &e, REFLECT_NOT_FOUND, msg);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        if (find_symbol(r, req->all_extension_numbers_of_type) < 0) {
            snprintf(msg, sizeof(msg), "unknown type '%.200s'", req->all_extension_numbers_of_type);
            set_error(&out, &e, REFLECT_NOT_FOUND, msg);
            break;
        }
        ext.base_type_name = req->all_extension_numbers_of_type; /* none: the list is empty */
        out.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        out.all_extension_numbers_response = &ext;
        break;
    default:
        set_error(&out, &e, REFLECT_INVALID, "the request asks for nothing this hub knows");
        break;
    }
    bool *seen = NULL;
    if (what && file < 0) {
        snprintf(msg, sizeof(msg), "unknown %s '%.200s'", kind, what);
        set_error(&out, &e, REFLECT_NOT_FOUND, msg);
    } else if (what) {
        seen = ag_xcalloc(r->nfiles, sizeof(*seen));
        fd.file_descriptor_proto = ag_xcalloc(r->nfiles, sizeof(*fd.file_descriptor_proto));
        closure(r, (size_t)file, seen, fd.file_descriptor_proto, &fd.n_file_descriptor_proto);
        out.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        out.file_descriptor_response = &fd;
    }
    grpc_byte_buffer *bb = rpc_pb_pack(&out.base);
    for (size_t i = 0; i < ls.n_service; i++)
        free(ls.service[i]);
    free(ls.service);
    free(fd.file_descriptor_proto);
    free(seen);
    return bb;
}

static void on_call(struct rpc_call *c, grpc_byte_buffer *req)
{
    (void)req; /* bidi: messages come through on_recv */
    rpc_call_recv(c);
}

static void on_recv(struct rpc_call *c, grpc_byte_buffer *msg)
{
    if (!msg) { /* the client is done asking */
        rpc_call_finish(c, AG_OK, NULL);
        return;
    }
    struct hub_reflect *r = rpc_call_method_arg(c);
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, msg)) {
        rpc_call_finish(c, AG_INVALID_ARGUMENT, "unreadable message");
        return;
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    refl_req *in = grpc__reflection__v1__server_reflection_request__unpack(
        NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (!in) {
        rpc_call_finish(c, AG_INVALID_ARGUMENT, "not a ServerReflectionRequest");
        return;
    }
    struct ag_err err = AG_ERR_INIT;
    int rc = rpc_call_send_take(c, answer(r, in), &err);
    grpc__reflection__v1__server_reflection_request__free_unpacked(in, NULL);
    if (rc != 0)
        rpc_call_fail(c, &err);
    else
        rpc_call_recv(c);
}

const struct rpc_method *hub_reflect_methods(struct hub_reflect *r)
{
    static const char *const paths[HUB_REFLECT_NMETHODS] = {
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};
    for (size_t i = 0; i < HUB_REFLECT_NMETHODS; i++)
        r->rows[i] = (struct rpc_method){.path = paths[i],
                                         .kind = RPC_BIDI,
                                         .preposted = 2,
                                         .max_request_bytes = 64 << 10,
                                         .on_call = on_call,
                                         .on_recv = on_recv,
                                         .arg = r};
    return r->rows;
}
