// error.h: how gvm reports failures.
//
// Two kinds, as in DESIGN.md:
//  * Bad input from a user (a file, a config key, a flag) is never an abort. The function returns a
//    gvm_status other than GVM_OK and leaves a message naming the file or key, what is wrong and what to
//    do; gvm_error_message() reads it (per thread).
//  * A broken internal invariant (a shape mismatch inside the library, a NULL where none can be) aborts
//    at once with file:line through GVM_CHECK, as llm.c's xCheck macros do.
#ifndef GVM_ERROR_H
#define GVM_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gvm_status {
    GVM_OK = 0,
    GVM_ERR_IO,          // a file could not be opened, read or written
    GVM_ERR_FORMAT,      // a file's content is not what its format says
    GVM_ERR_INVALID,     // a value (config key, flag, argument) is out of range or of the wrong kind
    GVM_ERR_NOT_FOUND,   // a named thing (tensor, key, file) is missing
    GVM_ERR_DEVICE,      // the requested device is not usable here
    GVM_ERR_MEMORY,      // an allocation failed
} gvm_status;

// Record the message for the current thread (printf-style) and return `status`, so a caller can write
// `return gvm_error_set(GVM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));`.
gvm_status gvm_error_set(gvm_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The last message set on this thread ("" when none).
const char *gvm_error_message(void);
void gvm_error_clear(void);
const char *gvm_status_name(gvm_status status);

// Abort with file:line and a formatted message. Never returns.
void gvm_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

// Internal invariant: abort with file:line and the message when `cond` is false.
#define GVM_CHECK(cond, ...)                                                    \
    do {                                                                        \
        if (!(cond)) gvm_fatal(__FILE__, __LINE__, __VA_ARGS__);                \
    } while (0)

// malloc/calloc that abort on failure (for internal buffers whose size is known to be sane).
void *gvm_xmalloc(size_t size, const char *file, int line);
void *gvm_xcalloc(size_t count, size_t size, const char *file, int line);
#define GVM_MALLOC(size) gvm_xmalloc((size), __FILE__, __LINE__)
#define GVM_CALLOC(count, size) gvm_xcalloc((count), (size), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif
