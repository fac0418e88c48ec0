// file_fixture.h: small file helpers the data tests share: size, substring, copy (optionally truncated) and
// damaging one compressed chunk of an HDF5 dataset in place.
#ifndef GVM_TEST_FILE_FIXTURE_H
#define GVM_TEST_FILE_FIXTURE_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/dataset.h"

static inline long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static inline bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static inline void copy_file(const char *from, const char *to, long long nbytes) {  // nbytes < 0: all
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    GVM_CHECK(f && g, "cannot copy %s to %s", from, to);
    char buf[65536];
    size_t n;
    long long left = nbytes < 0 ? (long long)1 << 62 : nbytes;
    while (left > 0 && (n = fread(buf, 1, left < (long long)sizeof buf ? (size_t)left : sizeof buf, f)) > 0) {
        GVM_CHECK(fwrite(buf, 1, n, g) == n, "cannot write %s", to);
        left -= (long long)n;
    }
    fclose(f);
    GVM_CHECK(fclose(g) == 0, "cannot close %s", to);
}

// Overwrite bytes in the middle of the first stored chunk of dataset `name` (deflate's checksum then fails).
static inline bool damage_chunk(const char *path, const char *name) {
    gvm_hdf5_lock();  // direct HDF5 calls hold the library's lock (data/dataset.h)
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hsize_t offset[4];
    unsigned mask;
    haddr_t addr = 0;
    hsize_t size = 0;
    hid_t sp = H5Dget_space(d);
    herr_t rc = H5Dget_chunk_info(d, sp, 0, offset, &mask, &addr, &size);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    gvm_hdf5_unlock();
    if (rc < 0 || size < 16) return false;
    FILE *fp = fopen(path, "r+b");
    fseek(fp, (long)(addr + size / 2 - 4), SEEK_SET);
    fwrite("\xde\xad\xbe\xef\x00\xff\x13\x37", 1, 8, fp);
    fclose(fp);
    return true;
}

#endif
