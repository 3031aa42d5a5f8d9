// train_synth.cc - the synthetic series recipe. Every component is optional
// and drawn at random; magnitudes are relative to a base unit and the result
// gets a random offset and scale, since the scaler must see every level.
#include "train_synth.h"

#include <cmath>
#include <vector>

namespace toto_train {

namespace {

struct Draw {
    std::mt19937_64 &rng;
    double uniform(double a, double b) {
        return std::uniform_real_distribution<double>(a, b)(rng);
    }
    double normal() {
        return std::normal_distribution<double>(0.0, 1.0)(rng);
    }
    bool chance(double p) {
        return uniform(0, 1) < p;
    }
    double log_uniform(double a, double b) {
        return std::exp(uniform(std::log(a), std::log(b)));
    }
    // Heavy-tailed noise now and then, as real residuals are.
    double noise(double df) {
        return df > 0 ? std::student_t_distribution<double>(df)(rng) : normal();
    }
};

// Periods the calendar gives: hourly data's day and week, daily data's week
// and year, business days, minutes' hours and days.
const double kPeriods[] = {24, 168, 7, 5, 12, 48, 96, 288, 30.4, 52, 365.25, 60, 4};

// A periodic shape with a few harmonics, normalised to unit amplitude.
void add_season(Draw &d, std::vector<double> &s, double period, double amp) {
    int harmonics = 1 + int(d.uniform(0, 4));
    double c[4], ph[4];
    for (int k = 0; k < harmonics; k++) {
        c[k] = d.normal() / (k + 1);
        ph[k] = d.uniform(0, 2 * M_PI);
    }
    bool square = d.chance(0.15); // on/off cycles: business hours, batch jobs
    double phase = d.uniform(0, period);
    for (size_t t = 0; t < s.size(); t++) {
        double v = 0, a = 2 * M_PI * (double(t) + phase) / period;
        for (int k = 0; k < harmonics; k++)
            v += c[k] * std::sin((k + 1) * a + ph[k]);
        s[t] += amp * (square ? (v > 0 ? 1.0 : -1.0) : v);
    }
}

} // namespace

void synth_series(std::mt19937_64 &rng, double *x, int64_t n) {
    Draw d{rng};
    std::vector<double> s(size_t(n), 0.0);
    const double noise_sd = d.log_uniform(0.01, 1.0);
    // Trend: linear, sometimes with a change of slope.
    if (d.chance(0.6)) {
        double slope = d.normal() * d.log_uniform(1e-4, 2e-2), bend = d.uniform(0, double(n));
        double slope2 = d.chance(0.3) ? d.normal() * 1e-2 : slope;
        for (int64_t t = 0; t < n; t++)
            s[t] += t < bend ? slope * t : slope * bend + slope2 * (t - bend);
    }
    // Seasonalities: often one, sometimes two (a day within a week).
    int seasons = d.chance(0.75) ? 1 + int(d.chance(0.4)) : 0;
    for (int i = 0; i < seasons; i++) {
        double period = kPeriods[size_t(d.uniform(0, sizeof kPeriods / sizeof kPeriods[0]))];
        if (i == 1 && period <= 24)
            period *= 7;
        add_season(d, s, period, d.log_uniform(0.1, 3.0));
    }
    // Random walk (prices, counters): a cumulated noise of its own.
    if (d.chance(0.45)) {
        double step = d.log_uniform(0.01, 0.5), level = 0, df = d.chance(0.5) ? 3.0 : 0;
        for (int64_t t = 0; t < n; t++)
            s[t] += (level += step * d.noise(df));
    }
    // Level shifts.
    if (d.chance(0.35)) {
        int shifts = 1 + int(d.uniform(0, 3));
        for (int k = 0; k < shifts; k++) {
            int64_t at = int64_t(d.uniform(0, double(n)));
            double by = d.normal() * d.log_uniform(0.3, 5.0);
            for (int64_t t = at; t < n; t++)
                s[t] += by;
        }
    }
    // Noise: white or AR(1), Gaussian or heavy-tailed.
    double ar = d.chance(0.4) ? d.uniform(0.3, 0.95) : 0, df = d.chance(0.3) ? 3.0 : 0, e = 0;
    for (int64_t t = 0; t < n; t++) {
        e = ar * e + noise_sd * d.noise(df);
        s[t] += e;
    }
    // Spikes.
    if (d.chance(0.3)) {
        double rate = d.log_uniform(0.001, 0.02), size = d.log_uniform(2.0, 10.0);
        for (int64_t t = 0; t < n; t++)
            if (d.chance(rate))
                s[t] += size * (d.chance(0.8) ? 1 : -1) * (1 + std::fabs(d.normal()));
    }
    // Multiplicative series (positive, growing amplitude) now and then.
    bool multiplicative = d.chance(0.2);
    double scale = d.log_uniform(1e-2, 1e4), offset = d.chance(0.5) ? d.normal() * scale * 10 : 0;
    double lo = 0;
    if (multiplicative) {
        for (int64_t t = 0; t < n; t++)
            s[t] = std::exp(std::tanh(s[t] / 10.0) * 3.0);
        offset = 0;
    }
    bool clip = d.chance(0.15); // counts and durations stop at zero
    for (int64_t t = 0; t < n; t++) {
        double v = offset + scale * s[t];
        x[t] = clip ? std::max(v, lo) : v;
    }
}

} // namespace toto_train
