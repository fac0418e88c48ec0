// arena.c: chunked bump allocator (see arena.h).
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/error.h"

static gvm_arena_block *block_new(gvm_device device, size_t size) {
    gvm_arena_block *b = GVM_MALLOC(sizeof *b);
    b->base = gvm_device_alloc(device, size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

static void block_free(gvm_device device, gvm_arena_block *b) {
    gvm_device_free(device, b->base);
    free(b);
}

void gvm_arena_init_on(gvm_arena *arena, gvm_device device, size_t initial_bytes) {
    memset(arena, 0, sizeof *arena);
    arena->min_block = initial_bytes ? initial_bytes : (size_t)16 << 20;
    arena->device = device;
}

void gvm_arena_init(gvm_arena *arena, size_t initial_bytes) { gvm_arena_init_on(arena, GVM_DEVICE_CPU, initial_bytes); }

void gvm_arena_free(gvm_arena *arena) {
    gvm_arena_block *b = arena->head;
    while (b) {
        gvm_arena_block *next = b->next;
        block_free(arena->device, b);
        b = next;
    }
    arena->head = NULL;
    arena->used = 0;
}

void *gvm_arena_alloc(gvm_arena *arena, size_t bytes) {
    size_t need = (bytes + GVM_ARENA_ALIGN - 1) / GVM_ARENA_ALIGN * GVM_ARENA_ALIGN;
    if (need == 0) need = GVM_ARENA_ALIGN;
    gvm_arena_block *b = arena->head;
    if (!b || b->size - b->used < need) {
        // Grow geometrically so a long step costs O(log n) blocks.
        size_t size = arena->min_block;
        if (b && b->size * 2 > size) size = b->size * 2;
        if (size < need) size = need;
        gvm_arena_block *nb = block_new(arena->device, size);
        nb->next = b;
        arena->head = b = nb;
    }
    void *p = b->base + b->used;
    b->used += need;
    arena->used += need;
    if (arena->used > arena->peak) arena->peak = arena->used;
    return p;
}

void *gvm_arena_calloc(gvm_arena *arena, size_t bytes) {
    void *p = gvm_arena_alloc(arena, bytes);
    gvm_device_memset0(arena->device, p, bytes);
    return p;
}

void gvm_arena_reset(gvm_arena *arena) {
    gvm_arena_block *b = arena->head;
    if (b && b->next == NULL && b->size >= arena->peak) {
        b->used = 0;  // steady state: one block, already big enough
    } else if (b) {
        gvm_arena_free(arena);
        arena->head = block_new(arena->device, arena->peak > arena->min_block ? arena->peak : arena->min_block);
    }
    arena->used = 0;
}

gvm_arena_mark gvm_arena_save(const gvm_arena *arena) {
    gvm_arena_mark m = {arena->head, arena->head ? arena->head->used : 0, arena->used};
    return m;
}

void gvm_arena_rewind(gvm_arena *arena, gvm_arena_mark mark) {
    // Blocks made after the mark sit in front of mark.head in the list (newest first).
    while (arena->head && arena->head != mark.head) {
        gvm_arena_block *next = arena->head->next;
        block_free(arena->device, arena->head);
        arena->head = next;
    }
    GVM_CHECK(arena->head == mark.head, "gvm_arena_rewind: mark is not from this arena (or was reset)");
    if (arena->head) arena->head->used = mark.head_used;
    arena->used = mark.used;
}
