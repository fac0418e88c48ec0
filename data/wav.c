// wav.c: WAV files without FFmpeg: gvm_wav_write (16-bit PCM mono, atomic) and gvm_wav_read (PCM or float,
// any channel count, mixed to mono). Generated music is written here; gvm_media_mux_audio puts it in a video.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/media.h"

static void put_u16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

gvm_status gvm_wav_write(const char *path, const float *samples, int64_t n, int rate) {
    GVM_CHECK(path && (samples || n == 0), "gvm_wav_write: NULL argument");
    if (n < 0 || (uint64_t)n * 2 > 0xFFFFFFFFu - 36)
        return gvm_error_set(GVM_ERR_INVALID, "%s: %lld samples do not fit a WAV file (4 GiB limit)", path, (long long)n);
    if (rate < 1 || rate > 1000000)
        return gvm_error_set(GVM_ERR_INVALID, "%s: sample rate %d Hz is out of range", path, rate);
    uint32_t data_bytes = (uint32_t)n * 2;
    uint8_t h[44];
    memcpy(h, "RIFF", 4);
    put_u32(h + 4, 36 + data_bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_u32(h + 16, 16);                  // fmt chunk size
    put_u16(h + 20, 1);                   // WAVE_FORMAT_PCM
    put_u16(h + 22, 1);                   // channels
    put_u32(h + 24, (uint32_t)rate);
    put_u32(h + 28, (uint32_t)rate * 2);  // bytes per second
    put_u16(h + 32, 2);                   // block align
    put_u16(h + 34, 16);                  // bits per sample
    memcpy(h + 36, "data", 4);
    put_u32(h + 40, data_bytes);

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp)
        return gvm_error_set(GVM_ERR_INVALID, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return gvm_error_set(GVM_ERR_IO, "%s: cannot write: %s; check the folder exists and is writable", path,
                                 strerror(errno));
    bool ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    int16_t buf[4096];
    for (int64_t i = 0; ok && i < n; i += 4096) {
        int m = (int)(n - i < 4096 ? n - i : 4096);
        for (int j = 0; j < m; j++) {
            float x = samples[i + j];
            x = x != x ? 0.0f : x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x;  // NaN -> silence
            int16_t v = (int16_t)lrintf(x * 32767.0f);
            uint8_t *b = (uint8_t *)&buf[j];  // little-endian on every host
            b[0] = (uint8_t)v;
            b[1] = (uint8_t)((uint16_t)v >> 8);
        }
        ok = fwrite(buf, 2, (size_t)m, f) == (size_t)m;
    }
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        unlink(tmp);
        return gvm_error_set(GVM_ERR_IO, "%s: cannot write: %s; check the disk has space and the folder is writable",
                             path, strerror(err));
    }
    return GVM_OK;
}

// One sample of `bits` in `fmt` (1 PCM, 3 float) at p, as float in [-1, 1].
static float wav_sample(const uint8_t *p, int fmt, int bits) {
    if (fmt == 3) {
        if (bits == 32) {
            uint32_t u = get_u32(p);
            float x;
            memcpy(&x, &u, 4);
            return x;
        }
        uint64_t u = (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
        double x;
        memcpy(&x, &u, 8);
        return (float)x;
    }
    switch (bits) {
    case 8: return ((int)p[0] - 128) / 128.0f;  // 8-bit WAV is unsigned
    case 16: return (int16_t)get_u16(p) / 32768.0f;
    case 24: return (float)((int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24) >> 8) / 8388608.0f;
    default: return (float)((double)(int32_t)get_u32(p) / 2147483648.0);
    }
}

gvm_status gvm_wav_read(const char *path, float **samples, int64_t *n, int *rate) {
    GVM_CHECK(path && samples && n && rate, "gvm_wav_read: NULL argument");
    *samples = NULL;
    *n = 0;
    *rate = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gvm_error_set(GVM_ERR_IO, "%s: cannot open: %s; check the path", path, strerror(errno));
    struct stat sb;
    int64_t file_size = fstat(fileno(f), &sb) == 0 ? (int64_t)sb.st_size : -1;
    gvm_status s = GVM_OK;
    uint8_t h[12];
    int fmt = 0, channels = 0, bits = 0, block = 0, sample_rate = 0;
    float *out = NULL;
    int64_t frames = 0;
    if (file_size == 0) {
        s = gvm_error_set(GVM_ERR_FORMAT, "%s: zero length (the file is empty); write it again", path);
        goto done;
    }
    if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) {
        s = gvm_error_set(GVM_ERR_FORMAT, "%s: not a WAV file (no RIFF/WAVE header); read other audio files with "
                          "gvm_audio_read", path);
        goto done;
    }
    for (;;) {
        uint8_t ch[8];
        if (fread(ch, 1, 8, f) != 8) {
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV file without a %s chunk; the file is truncated: write it again",
                              path, fmt ? "data" : "fmt");
            goto done;
        }
        uint32_t size = get_u32(ch + 4);
        if (!memcmp(ch, "fmt ", 4)) {
            uint8_t b[40] = {0};
            if (size < 16 || fread(b, 1, size < 40 ? size : 40, f) != (size < 40 ? size : 40)) {
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV fmt chunk of %u bytes is too short or truncated", path, size);
                goto done;
            }
            if (size > 40 && fseeko(f, size - 40, SEEK_CUR) != 0) {
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV file truncated in its fmt chunk", path);
                goto done;
            }
            fmt = (int)get_u16(b);
            channels = (int)get_u16(b + 2);
            sample_rate = (int)get_u32(b + 4);
            block = (int)get_u16(b + 12);
            bits = (int)get_u16(b + 14);
            if (fmt == 0xFFFE && size >= 40) fmt = (int)get_u16(b + 24);  // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID
            if (size & 1) fseeko(f, 1, SEEK_CUR);
            continue;
        }
        if (!memcmp(ch, "data", 4)) {
            if (!fmt) {
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV data chunk before its fmt chunk", path);
                goto done;
            }
            bool pcm_ok = fmt == 1 && (bits == 8 || bits == 16 || bits == 24 || bits == 32);
            bool flt_ok = fmt == 3 && (bits == 32 || bits == 64);
            if (!pcm_ok && !flt_ok) {
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV sample format %d with %d bits is not PCM or float; read it "
                                  "with gvm_audio_read (FFmpeg), or convert it: ffmpeg -i IN -c:a pcm_s16le OUT.wav",
                                  path, fmt, bits);
                goto done;
            }
            if (channels < 1 || sample_rate < 1 || block != channels * bits / 8) {
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV header is inconsistent (%d channels, %d Hz, %d bits, block "
                                  "%d bytes); write the file again", path, channels, sample_rate, bits, block);
                goto done;
            }
            // A streamed WAV leaves the size at 0 or 0xFFFFFFFF; a cut one claims more than is there: read
            // the whole frames that are present.
            int64_t bytes = size;
            off_t here = ftello(f);
            if (file_size >= 0 && here >= 0 && (size == 0 || bytes > file_size - here)) bytes = file_size - here;
            frames = bytes / block;
            out = malloc((size_t)(frames ? frames : 1) * sizeof(float));
            uint8_t *raw = malloc(65536 - 65536 % (size_t)block);
            if (!out || !raw) {
                free(raw);
                s = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory for %lld samples", path, (long long)frames);
                goto done;
            }
            size_t chunk_frames = (65536 - 65536 % (size_t)block) / (size_t)block;
            int bps = bits / 8;
            for (int64_t i = 0; i < frames;) {
                size_t m = (size_t)(frames - i) < chunk_frames ? (size_t)(frames - i) : chunk_frames;
                size_t got = fread(raw, (size_t)block, m, f);
                for (size_t j = 0; j < got; j++) {
                    double acc = 0;
                    for (int c = 0; c < channels; c++) acc += wav_sample(raw + j * block + (size_t)c * bps, fmt, bits);
                    out[i + (int64_t)j] = (float)(acc / channels);
                }
                i += (int64_t)got;
                if (got < m) {
                    frames = i;
                    break;
                }
            }
            free(raw);
            goto done;
        }
        // Any other chunk (LIST, fact, ...): skip it (chunks are padded to even sizes).
        if (fseeko(f, (off_t)size + (size & 1), SEEK_CUR) != 0) {
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: WAV file truncated", path);
            goto done;
        }
    }
done:
    fclose(f);
    if (s != GVM_OK) {
        free(out);
        return s;
    }
    *samples = out;
    *n = frames;
    *rate = sample_rate;
    return GVM_OK;
}
