/* The latency histogram: percentiles within the bucket precision. */
#include <criterion/criterion.h>

#include "metrics/histogram.h"

static histogram_t h;

Test(histogram, empty_reads_zero) {
    histogram_reset(&h);
    cr_assert_eq(histogram_count(&h), 0);
    cr_assert_eq(histogram_percentile(&h, 50), 0);
    cr_assert_eq(histogram_mean(&h), 0.0);
}

Test(histogram, small_values_are_exact) {
    histogram_reset(&h);
    for (uint64_t v = 0; v < 16; v++)
        histogram_record(&h, v);
    cr_assert_eq(histogram_percentile(&h, 100), 15);
    cr_assert_eq(histogram_percentile(&h, 50), 7);
    cr_assert_eq(histogram_max(&h), 15);
}

Test(histogram, percentiles_of_a_uniform_range_are_within_seven_percent) {
    histogram_reset(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        histogram_record(&h, v * 1000);
    double ps[] = {1, 10, 50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double want = ps[i] * 1000.0 * 1000.0;
        double got = (double)histogram_percentile(&h, ps[i]);
        cr_assert(got >= want * 0.999 && got <= want * 1.07, "p%.1f: got %.0f want %.0f", ps[i],
                  got, want);
    }
    cr_assert_eq(histogram_percentile(&h, 100), 100000 * 1000);
    cr_assert_float_eq(histogram_mean(&h), 50000.5 * 1000, 1);
}

Test(histogram, values_beyond_the_range_land_in_the_last_bucket) {
    histogram_reset(&h);
    histogram_record(&h, UINT64_MAX);
    cr_assert_eq(histogram_count(&h), 1);
    cr_assert_eq(histogram_percentile(&h, 50), UINT64_MAX);
}

Test(histogram, bucket_bounds_rise_strictly) {
    for (int i = 1; i < HISTOGRAM_BUCKETS; i++)
        cr_assert_gt(histogram_bucket_upper(i), histogram_bucket_upper(i - 1), "bucket %d", i);
}

Test(histogram, merge_adds_counts) {
    static histogram_t a, b;
    histogram_reset(&a);
    histogram_reset(&b);
    histogram_record(&a, 100);
    histogram_record(&b, 5000);
    histogram_record(&b, 7);
    histogram_merge(&a, &b);
    cr_assert_eq(histogram_count(&a), 3);
    cr_assert_eq(histogram_max(&a), 5000);
}

Test(histogram, record_many_equals_one_record_per_value) {
    static histogram_t one, many;
    histogram_reset(&one);
    histogram_reset(&many);
    uint64_t values[300];
    for (size_t i = 0; i < 300; i++) {
        values[i] = (i * 7919 % 300) * 1000 + i; /* unordered, max not last */
        histogram_record(&one, values[i]);
    }
    histogram_record_many(&many, values, 0); /* no values: nothing changes */
    cr_assert_eq(histogram_count(&many), 0);
    histogram_record_many(&many, values, 100);
    histogram_record_many(&many, values + 100, 200);
    cr_assert_eq(histogram_count(&many), histogram_count(&one));
    cr_assert_eq(histogram_max(&many), histogram_max(&one));
    cr_assert_float_eq(histogram_mean(&many), histogram_mean(&one), 1e-9);
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        cr_assert_eq(atomic_load(&many.buckets[i]), atomic_load(&one.buckets[i]), "bucket %d", i);
}
