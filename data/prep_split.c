// prep_split.c: the train/eval split of `gvm prep`, by source. Each source's name (its path relative to the
// input folder, or the video path as a manifest writes it) is hashed to a number u in [0, 1); the source goes
// to eval when u < eval_fraction. The same name always lands in the same split, whatever the order of the
// sources, the thread count or the machine, and every clip of a source shares its split, so no source is
// ever in both. (A list-position rule would move sources between splits when a file is added.) A manifest
// may give a source's split itself (an official split, or sources that share music and must stay together):
// that split wins, whatever the fraction.
#include "data/prep.h"

uint64_t gvm_prep_name_hash(const char *name) {
    // FNV-1a over the bytes: simple and stable; its low-quality high bits are then mixed by the SplitMix64
    // finaliser so that similar names ("clip1.mp4", "clip2.mp4") give unrelated values.
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

double gvm_prep_split_value(const char *name) {
    return (double)(gvm_prep_name_hash(name) >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

bool gvm_prep_split_is_eval(const char *name, double eval_fraction) {
    return gvm_prep_split_value(name) < eval_fraction;
}

int gvm_prep_source_split(const gvm_prep_source *src, double eval_fraction) {
    if (src->split == GVM_PREP_SPLIT_TRAIN || src->split == GVM_PREP_SPLIT_EVAL) return src->split;
    return gvm_prep_split_is_eval(src->name, eval_fraction) ? GVM_PREP_SPLIT_EVAL : GVM_PREP_SPLIT_TRAIN;
}
