// loudness.h: loudness measurement (ITU-R BS.1770-4 integrated loudness, LUFS) and loudness normalisation
// of generated music, so `gvm generate` writes WAVs as audiocraft's audio_write(strategy="loudness") does:
// scaled to a target loudness (-14 LUFS by default), then kept under a peak limit.
//
// Audio layout: float samples, nominally in [-1, 1]; `n` always counts frames (samples per channel), and a
// multi-channel signal is interleaved: x[frame * channels + c]. 1 (mono) or 2 (L, R) channels; both get
// channel weight 1.0 as BS.1770 says for front channels.
//
// The measurement follows pyloudnorm (Meter(rate, filter_class="DeMan")), which is the oracle of the tests:
//  * K-weighting as two biquads whose coefficients come from the analog prototypes of BS.1770's filters
//    (Brecht De Man's derivation), so any sample rate works, not only the 48 kHz coefficients the standard
//    tabulates: a high shelf (+3.99984385397 dB, Q 0.7071752369554193, fc 1681.9744509555319 Hz) then
//    the RLB high pass (Q 0.5003270373253953, fc 38.13547087613982 Hz). At 48 kHz they give the standard's
//    tabulated coefficients to 1e-8. pyloudnorm's *default* "K-weighting" class and torchaudio's loudness
//    (which audiocraft calls) use RBJ-cookbook approximations instead (shelf +4 dB, 1500 Hz, Q 1/sqrt 2;
//    high pass 38 Hz, Q 0.5): pyloudnorm's reads 0.03-0.05 LU lower at 44.1/48 kHz, 0.06 at 32 kHz and
//    0.11-0.13 at 16 kHz on the test signals (tests/golden/data/data_loudness/cases.txt lists each).
//  * 400 ms blocks every 100 ms; block j covers samples [int(0.4*(0.25j)*rate), int(0.4*(0.25j+1)*rate))
//    and the block count is round((T - 0.4) / 0.1) + 1 (T = n / rate, round half to even), computed in
//    the same floating-point order as pyloudnorm. When that rounding asks for a last block past the end,
//    it is measured over the samples there are but still divided by the full block length (pyloudnorm's
//    behaviour; a difference of at most 50 ms of zeros in one block).
//  * absolute gate: blocks at >= -70 LUFS; relative gate: blocks louder than (the loudness of the blocks
//    that passed the absolute gate) - 10 LU; loudness = -0.691 + 10 log10(sum_c mean_j z_cj).
//
// "No loudness": a signal whose blocks all fail the gates (digital silence, anything quieter than -70 LUFS)
// or that is shorter than one 400 ms block measures -INFINITY. That is a value, not an error: the status is
// still GVM_OK. Errors (GVM_ERR_INVALID, with a message): a channel count other than 1 or 2, a rate
// outside [1000, 1000000] Hz, n < 0, a NaN or infinite sample. NULL pointers abort (GVM_CHECK).
//
// Thread-safe: no state outside the arguments.
#ifndef GVM_LOUDNESS_H
#define GVM_LOUDNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define GVM_LOUDNESS_TARGET_LUFS (-14.0)  // audiocraft's default (loudness_headroom_db = 14)
#define GVM_LOUDNESS_PEAK_LIMIT_DB (-1.0) // default sample-peak ceiling, dBFS
// Signals whose RMS (over all samples) is below this are left as they are by the normaliser, as
// audiocraft's normalize_loudness does (energy_floor = 2e-3, about -54 dBFS): a near-silent generation
// would otherwise have its noise floor raised to full loudness.
#define GVM_LOUDNESS_ENERGY_FLOOR 2e-3

// Integrated loudness of x: float [n, channels] interleaved. *lufs = LUFS, or -INFINITY (see above).
gvm_status gvm_loudness_integrated(const float *x, int64_t n, int channels, int rate, double *lufs);

// What the normaliser did.
typedef enum gvm_loudness_action {
    GVM_LOUDNESS_SCALED = 0,    // scaled so the output reads target_lufs
    GVM_LOUDNESS_PEAK_LIMITED,  // the target gain would have put the peak above the limit: the gain was
                                // lowered so the peak sits at the limit; the output is quieter than target
    GVM_LOUDNESS_UNCHANGED,     // no loudness (-INFINITY: silence, < -70 LUFS, shorter than 400 ms) or RMS
                                // below GVM_LOUDNESS_ENERGY_FLOOR: x is left as it is, gain_db = 0
} gvm_loudness_action;

typedef struct gvm_loudness_report {
    gvm_loudness_action action;
    double input_lufs;    // measured before (-INFINITY when it has none)
    double output_lufs;   // measured after, on the float samples written back
    double gain_db;       // applied gain, 20 log10(factor)
    double input_peak;    // max |x| before (linear, 1.0 = 0 dBFS)
    double output_peak;   // max |x| after
    double input_rms;     // sqrt(mean x^2) over all samples before
} gvm_loudness_report;

// Scale x (float [n, channels] interleaved, in place) to target_lufs, then, when that puts the sample peak
// above peak_limit_db (dBFS), lower the gain so the peak is exactly at the limit. Pass peak_limit_db =
// INFINITY for no limit.
//
// Why a gain limit and not clipping: audiocraft normalises and then clamps samples to [-1, 1]; the clamp
// distorts (and with a generated peak of, say, +6 dB after normalisation, audibly). Lowering the whole gain
// keeps the waveform intact at the price of ending below the target loudness; `action` says when.
// Sample peak, not true peak (no oversampling): what a 16-bit WAV can clip is the samples.
//
// The gain is first target - input_lufs; because the -70 LUFS absolute gate does not scale with the
// signal, a very quiet input can read slightly off target after scaling, so the normaliser re-measures and
// corrects (a few rounds at most) until the output reads the target to 1e-4 LU.
// r may be NULL. Errors as gvm_loudness_integrated, plus target_lufs outside [-70, 0] or a NaN limit;
// on error x is unchanged.
gvm_status gvm_loudness_normalize_channels(float *x, int64_t n, int channels, int rate, double target_lufs,
                                           double peak_limit_db, gvm_loudness_report *r);
// The mono case (generated music is mono): gvm_loudness_normalize_channels(x, n, 1, rate, ...).
gvm_status gvm_loudness_normalize(float *x, int64_t n, int rate, double target_lufs, double peak_limit_db,
                                  gvm_loudness_report *r);

// The K-weighting biquads at `rate` (the DeMan derivation above): b[k] = {b0, b1, b2}, a[k] = {1, a1, a2}
// for stage k = 0 (high shelf) and 1 (high pass), applied in that order. For tests and tools.
void gvm_loudness_kweighting(int rate, double b[2][3], double a[2][3]);

// Helpers over `count` samples (all channels together): max |x| and sqrt(mean x^2); 0 when count == 0.
double gvm_audio_peak(const float *x, int64_t count);
double gvm_audio_rms(const float *x, int64_t count);

#endif
