/* common/container.h - AG_CONTAINER_OF: from a pointer to a member back to its struct.
 * The intrusive primitives (common/list.h, common/queue.h) embed a node in the element; this is
 * how a user gets the element back. One definition, shared by both. */
#ifndef AGENTRY_COMMON_CONTAINER_H
#define AGENTRY_COMMON_CONTAINER_H

#include <stddef.h>

/* ptr points to the `member` field of a `type`; yields the `type *`. */
#define AG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
