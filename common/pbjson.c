/* common/pbjson.c - see pbjson.h.
 *
 * Fields are read and written through the descriptors' offsets, as protobuf-c's own pack and
 * unpack do: a field's value lives at offset, and its quantifier (the count of a repeated field,
 * has_ of an optional scalar, the case of a oneof) at quantifier_offset. Decoding allocates with
 * malloc everything protobuf_c_message_free_unpacked frees, so a message that fails half-way is
 * freed by it too. */
#include "common/pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/xalloc.h"

#define PBJSON_PATH_MAX 256

/* --- field access ---------------------------------------------------------------------------- */

static void *member(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (char *)m + f->offset;
}

static void *quantifier(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (char *)m + f->quantifier_offset;
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default: /* the 32-bit integers and float */
        return 4;
    }
}

static bool is_oneof(const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

/* A map<K, V> field is a repeated message "...Entry" of exactly key = 1 and value = 2. */
static bool is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t nl = strlen(d->name);
    return nl > 5 && strcmp(d->name + nl - 5, "Entry") == 0 && d->n_fields == 2 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

/* Is the singular value at p the type's zero (omitted from proto3 output)? */
static bool is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0 && !signbit(*(const double *)p);
    default: {
        static const char zeros[8];
        return memcmp(p, zeros, type_size(f->type)) == 0;
    }
    }
}

/* Is the singular field present in m (to be written out)? */
static bool is_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (is_oneof(f))
        return *(const uint32_t *)quantifier(m, f) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) /* proto2 */
        return true;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_STRING)
            return *(char **)member(m, f) != NULL;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            return *(ProtobufCMessage **)member(m, f) != NULL;
        return *(const protobuf_c_boolean *)quantifier(m, f);
    }
    return !is_zero(f, member(m, f));
}

/* --- encoding -------------------------------------------------------------------------------- */

/* A float as the shortest decimal that reads back as the same float (0.1f is 0.1, not
 * 0.10000000149011612). */
static double float_value(float v)
{
    char buf[32];
    for (int prec = 6; prec < 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v)
            return strtod(buf, NULL);
    }
    return v;
}

static cJSON *number_json(double v)
{
    if (isnan(v))
        return cJSON_CreateString("NaN");
    if (isinf(v))
        return cJSON_CreateString(v > 0 ? "Infinity" : "-Infinity");
    return cJSON_CreateNumber(v);
}

static cJSON *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return cJSON_CreateNumber(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return cJSON_CreateNumber(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)p);
        return cJSON_CreateString(buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)p);
        return cJSON_CreateString(buf);
    case PROTOBUF_C_TYPE_FLOAT:
        return number_json(float_value(*(const float *)p));
    case PROTOBUF_C_TYPE_DOUBLE:
        return number_json(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return cJSON_CreateBool(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? cJSON_CreateString(ev->name) : cJSON_CreateNumber(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return cJSON_CreateString(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *s = ag_base64_encode(b->data, b->len);
        cJSON *j = cJSON_CreateString(s);
        free(s);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? ag_pbjson_encode(sub) : cJSON_CreateObject();
    }
    }
    return cJSON_CreateNull();
}

/* A map's entries as one object: keys are strings in JSON whatever their proto type. */
static cJSON *map_json(const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries,
                       size_t n)
{
    const ProtobufCFieldDescriptor *kf = &((const ProtobufCMessageDescriptor *)f->descriptor)
                                              ->fields[0],
                                   *vf = kf + 1;
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++) {
        cJSON *k = value_json(kf, member(entries[i], kf));
        char buf[32];
        const char *key = cJSON_IsString(k) ? k->valuestring : buf;
        if (cJSON_IsBool(k))
            snprintf(buf, sizeof(buf), "%s", cJSON_IsTrue(k) ? "true" : "false");
        else if (cJSON_IsNumber(k))
            snprintf(buf, sizeof(buf), "%.0f", k->valuedouble);
        cJSON_AddItemToObject(o, key, value_json(vf, member(entries[i], vf)));
        cJSON_Delete(k);
    }
    return o;
}

cJSON *ag_pbjson_encode(const ProtobufCMessage *m)
{
    cJSON *o = cJSON_CreateObject();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            if (is_present(m, f))
                cJSON_AddItemToObject(o, f->name, value_json(f, member(m, f)));
            continue;
        }
        size_t n = *(const size_t *)quantifier(m, f);
        if (n == 0)
            continue;
        const char *arr = *(char *const *)member(m, f);
        if (is_map(f)) {
            cJSON_AddItemToObject(o, f->name, map_json(f, (ProtobufCMessage *const *)arr, n));
            continue;
        }
        cJSON *a = cJSON_AddArrayToObject(o, f->name);
        for (size_t k = 0; k < n; k++)
            cJSON_AddItemToArray(a, value_json(f, arr + k * type_size(f->type)));
    }
    return o;
}

/* --- decoding -------------------------------------------------------------------------------- */

static int bad(struct ag_err *err, const char *path, const char *want, const cJSON *got)
{
    const char *kind = cJSON_IsString(got)   ? "a string"
                       : cJSON_IsNumber(got) ? "a number"
                       : cJSON_IsBool(got)   ? "a boolean"
                       : cJSON_IsArray(got)  ? "an array"
                       : cJSON_IsObject(got) ? "an object"
                                             : "null";
    return ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s': want %s, got %s", path, want, kind);
}

/* An integer in [lo, hi] from a JSON number (integral) or a string of digits. 64-bit values
 * beyond 2^53 need the string form: a JSON number has lost their low bits already. */
static int int_in(const cJSON *j, const char *path, long double lo, long double hi, bool is_signed,
                  int64_t *s, uint64_t *u, struct ag_err *err)
{
    if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v != floor(v) || (long double)v < lo || (long double)v > hi)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s': %g is not an integer in range",
                              path, v);
        if (is_signed)
            *s = (int64_t)v;
        else
            *u = (uint64_t)v;
        return 0;
    }
    if (!cJSON_IsString(j) || !*j->valuestring)
        return bad(err, path, "an integer", j);
    char *end;
    errno = 0;
    if (is_signed)
        *s = strtoll(j->valuestring, &end, 10);
    else
        *u = j->valuestring[0] == '-' ? (errno = ERANGE, 0) : strtoull(j->valuestring, &end, 10);
    if (errno || *end || (is_signed ? (*s < lo || *s > hi) : *u > hi))
        return ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s': '%s' is not an integer in range",
                          path, j->valuestring);
    return 0;
}

static int float_in(const cJSON *j, const char *path, double *v, struct ag_err *err)
{
    if (cJSON_IsNumber(j)) {
        *v = j->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(j))
        return bad(err, path, "a number", j);
    char *end;
    if (strcmp(j->valuestring, "NaN") == 0)
        *v = NAN;
    else if (strcmp(j->valuestring, "Infinity") == 0)
        *v = INFINITY;
    else if (strcmp(j->valuestring, "-Infinity") == 0)
        *v = -INFINITY;
    else if (*j->valuestring && (*v = strtod(j->valuestring, &end), !*end))
        return 0;
    else
        return bad(err, path, "a number", j);
    return 0;
}

static int decode_msg(ProtobufCMessage *m, const cJSON *json, const char *path, struct ag_err *err);

/* out = path.name, or path[idx] when name is NULL; a path too long for messages ends in "...". */
static void sub_path(char out[PBJSON_PATH_MAX], const char *path, const char *name, size_t idx)
{
    int n = name ? snprintf(out, PBJSON_PATH_MAX, "%s%s%s", path, *path ? "." : "", name)
                 : snprintf(out, PBJSON_PATH_MAX, "%s[%zu]", path, idx);
    if (n >= PBJSON_PATH_MAX)
        memcpy(out + PBJSON_PATH_MAX - 4, "...", 4);
}

static int enum_in(const ProtobufCFieldDescriptor *f, const cJSON *j, const char *path, int *out,
                   struct ag_err *err)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (cJSON_IsString(j)) {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed,
                                                                                    j->valuestring);
        if (!ev)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s': '%s' is not a value of %s",
                              path, j->valuestring, ed->name);
        *out = ev->value;
        return 0;
    }
    int64_t v = 0;
    if (!cJSON_IsNumber(j))
        return bad(err, path, "an enum name", j);
    if (int_in(j, path, INT32_MIN, INT32_MAX, true, &v, NULL, err) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static ProtobufCMessage *new_msg(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = ag_xcalloc(1, d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

/* One value of field f from j into p (the field, or one element of its array). */
static int value_in(const ProtobufCFieldDescriptor *f, const cJSON *j, const char *path, void *p,
                    struct ag_err *err)
{
    int64_t s = 0;
    uint64_t u = 0;
    double dv = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (int_in(j, path, INT32_MIN, INT32_MAX, true, &s, &u, err) != 0)
            return -1;
        *(int32_t *)p = (int32_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (int_in(j, path, 0, UINT32_MAX, false, &s, &u, err) != 0)
            return -1;
        *(uint32_t *)p = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (int_in(j, path, INT64_MIN, INT64_MAX, true, &s, &u, err) != 0)
            return -1;
        *(int64_t *)p = s;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (int_in(j, path, 0, UINT64_MAX, false, &s, &u, err) != 0)
            return -1;
        *(uint64_t *)p = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (float_in(j, path, &dv, err) != 0)
            return -1;
        *(float *)p = (float)dv;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return float_in(j, path, (double *)p, err);
    case PROTOBUF_C_TYPE_BOOL:
        if (!cJSON_IsBool(j))
            return bad(err, path, "true or false", j);
        *(protobuf_c_boolean *)p = cJSON_IsTrue(j);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return enum_in(f, j, path, (int *)p, err);
    case PROTOBUF_C_TYPE_STRING:
        if (!cJSON_IsString(j))
            return bad(err, path, "a string", j);
        *(char **)p = ag_xstrdup(j->valuestring);
        return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        char *data;
        if (!cJSON_IsString(j))
            return bad(err, path, "a base64 string", j);
        if (ag_base64_decode(j->valuestring, 1, &data, &b->len) != 0)
            return ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s': not padded base64", path);
        b->data = (uint8_t *)data;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        if (!cJSON_IsObject(j))
            return bad(err, path, "an object", j);
        *(ProtobufCMessage **)p = new_msg(f->descriptor);
        return decode_msg(*(ProtobufCMessage **)p, j, path, err);
    }
    return ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s': unsupported type", path);
}

/* A map field from an object: one entry message per member, the key parsed from its name. */
static int map_in(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const cJSON *j,
                  const char *path, struct ag_err *err)
{
    if (!cJSON_IsObject(j))
        return bad(err, path, "an object", j);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    size_t n = (size_t)cJSON_GetArraySize(j);
    ProtobufCMessage **entries = ag_xcalloc(n ? n : 1, sizeof(*entries));
    *(ProtobufCMessage ***)member(m, f) = entries;
    size_t *count = quantifier(m, f);
    const cJSON *item;
    cJSON_ArrayForEach(item, j)
    {
        char sub[PBJSON_PATH_MAX];
        sub_path(sub, path, item->string, 0);
        ProtobufCMessage *e = new_msg(ed);
        entries[(*count)++] = e;
        cJSON *key = kf->type == PROTOBUF_C_TYPE_BOOL
                         ? cJSON_CreateBool(strcmp(item->string, "true") == 0)
                         : cJSON_CreateString(item->string);
        int rc = value_in(kf, key, sub, member(e, kf), err);
        cJSON_Delete(key);
        if (rc != 0 || value_in(vf, item, sub, member(e, vf), err) != 0)
            return -1;
    }
    return 0;
}

static int repeated_in(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const cJSON *j,
                       const char *path, struct ag_err *err)
{
    if (is_map(f))
        return map_in(m, f, j, path, err);
    if (!cJSON_IsArray(j))
        return bad(err, path, "an array", j);
    size_t n = (size_t)cJSON_GetArraySize(j), sz = type_size(f->type);
    char *arr = ag_xcalloc(n ? n : 1, sz);
    *(char **)member(m, f) = arr;
    size_t *count = quantifier(m, f);
    const cJSON *item;
    cJSON_ArrayForEach(item, j)
    {
        char sub[PBJSON_PATH_MAX];
        sub_path(sub, path, NULL, *count);
        /* Counted before decoding: a half-decoded element is freed with the rest. */
        if (value_in(f, item, sub, arr + (*count)++ * sz, err) != 0)
            return -1;
    }
    return 0;
}

/* f by its proto name, or by its lowerCamelCase JSON name. */
static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d,
                                                   const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    for (unsigned i = 0; !f && i < d->n_fields; i++) {
        const char *p = d->fields[i].name, *q = name;
        while (*p && *q) {
            if (*p == '_' && p[1] >= 'a' && p[1] <= 'z' && *q == p[1] - 'a' + 'A')
                p += 2, q++;
            else if (*p == *q)
                p++, q++;
            else
                break;
        }
        if (!*p && !*q)
            f = &d->fields[i];
    }
    return f;
}

static int field_in(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const cJSON *j,
                    const char *path, struct ag_err *err)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return repeated_in(m, f, j, path, err);
    if (is_oneof(f)) {
        uint32_t *which = quantifier(m, f);
        if (*which != 0) {
            const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(
                m->descriptor, *which);
            return ag_err_set(err, AG_INVALID_ARGUMENT,
                              "field '%s': '%s' is already set, and only one of them may be", path,
                              other ? other->name : "?");
        }
        *which = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        *(protobuf_c_boolean *)quantifier(m, f) = 1;
    }
    return value_in(f, j, path, member(m, f), err);
}

static int decode_msg(ProtobufCMessage *m, const cJSON *json, const char *path, struct ag_err *err)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* A field named twice (or as agent_id and agentId) is refused: the second value would
     * overwrite, and leak, the first. */
    bool *seen = ag_xcalloc(d->n_fields ? d->n_fields : 1, sizeof(*seen));
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, json)
    {
        char sub[PBJSON_PATH_MAX];
        sub_path(sub, path, item->string, 0);
        const ProtobufCFieldDescriptor *f = field_named(d, item->string);
        if (!f) {
            rc = ag_err_set(err, AG_INVALID_ARGUMENT, "unknown field '%s' in %s", sub, d->name);
            break;
        }
        if (seen[f - d->fields]) {
            rc = ag_err_set(err, AG_INVALID_ARGUMENT, "field '%s' is given twice", sub);
            break;
        }
        seen[f - d->fields] = true;
        if (!cJSON_IsNull(item) && (rc = field_in(m, f, item, sub, err)) != 0) /* null: default */
            break;
    }
    free(seen);
    return rc;
}

ProtobufCMessage *ag_pbjson_decode(const ProtobufCMessageDescriptor *d, const cJSON *json,
                                   struct ag_err *err)
{
    if (!cJSON_IsObject(json)) {
        bad(err, "(the message)", "an object", json);
        return NULL;
    }
    ProtobufCMessage *m = new_msg(d);
    if (decode_msg(m, json, "", err) != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}
