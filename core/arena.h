// arena.h: the activation arena, a bump allocator reset after every training step.
//
// Every tensor an op produces (its struct and its data), every tape node and every intermediate
// gradient comes from the context's arena. gvm_arena_reset() frees them all at once. After the first
// step the arena coalesces into one block as large as the peak, so the steady-state training loop makes
// no malloc calls at all.
//
// An arena hands out memory of one device: a context's host arena (structs, tape nodes, CPU tensor data)
// is a CPU arena; a CUDA context also has a device arena for tensor data. Block headers always live in
// host memory, so a device arena never dereferences the memory it hands out.
#ifndef GVM_ARENA_H
#define GVM_ARENA_H

#include <stddef.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_ARENA_ALIGN 64  // cache line; also what AVX-512 loads want

typedef struct gvm_arena_block {
    struct gvm_arena_block *next;
    char *base;   // `size` bytes of the arena's device memory
    size_t size;
    size_t used;
} gvm_arena_block;

typedef struct gvm_arena {
    gvm_arena_block *head;  // current block (newest first)
    size_t used;            // bytes handed out since the last reset, over all blocks
    size_t peak;            // the most ever in use between two resets
    size_t min_block;       // smallest block to allocate
    gvm_device device;      // where the memory lives
} gvm_arena;

void gvm_arena_init(gvm_arena *arena, size_t initial_bytes);  // a CPU arena
// An arena of `device` memory (the device must have been initialised: core/device.h).
void gvm_arena_init_on(gvm_arena *arena, gvm_device device, size_t initial_bytes);
void gvm_arena_free(gvm_arena *arena);
// Uninitialised memory, aligned to GVM_ARENA_ALIGN. Aborts when the system is out of memory.
void *gvm_arena_alloc(gvm_arena *arena, size_t bytes);
void *gvm_arena_calloc(gvm_arena *arena, size_t bytes);  // zeroed (on any device)
// Forget everything allocated since the last reset; keeps one block of at least the peak size.
void gvm_arena_reset(gvm_arena *arena);

// Scratch memory that an op needs only while its kernel runs: take a mark, allocate, run the kernel, then
// rewind to the mark, which releases everything allocated after it (the peak still counts it, so in the
// steady state the memory is reused, not returned to the system). Nothing allocated after the mark may
// still be in use.
typedef struct gvm_arena_mark {
    gvm_arena_block *head;
    size_t head_used;
    size_t used;
} gvm_arena_mark;
gvm_arena_mark gvm_arena_save(const gvm_arena *arena);
void gvm_arena_rewind(gvm_arena *arena, gvm_arena_mark mark);

#ifdef __cplusplus
}
#endif

#endif
