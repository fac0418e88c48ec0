// error.c: per-thread error messages and the fail-fast helpers declared in error.h.
#include "core/error.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char g_error_message[2048];

gvm_status gvm_error_set(gvm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error_message, sizeof g_error_message, fmt, ap);
    va_end(ap);
    return status;
}

const char *gvm_error_message(void) { return g_error_message; }

void gvm_error_clear(void) { g_error_message[0] = '\0'; }

const char *gvm_status_name(gvm_status status) {
    switch (status) {
    case GVM_OK: return "ok";
    case GVM_ERR_IO: return "I/O error";
    case GVM_ERR_FORMAT: return "format error";
    case GVM_ERR_INVALID: return "invalid value";
    case GVM_ERR_NOT_FOUND: return "not found";
    case GVM_ERR_DEVICE: return "device error";
    case GVM_ERR_MEMORY: return "out of memory";
    }
    return "unknown error";
}

void gvm_fatal(const char *file, int line, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "gvm: internal error at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *gvm_xmalloc(size_t size, const char *file, int line) {
    void *p = malloc(size ? size : 1);
    if (!p) gvm_fatal(file, line, "out of memory allocating %zu bytes", size);
    return p;
}

void *gvm_xcalloc(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) gvm_fatal(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}
