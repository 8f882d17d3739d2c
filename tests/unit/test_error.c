/* Status codes: names and descriptions for kaffe's own and librdkafka's. */
#include <criterion/criterion.h>
#include <string.h>

#include <kaffe/error.h>
#include <librdkafka/rdkafka.h>

Test(error, kaffe_codes_have_their_names_and_texts) {
    cr_assert_str_eq(kaffe_err_name(KAFFE_OK), "KAFFE_OK");
    cr_assert_str_eq(kaffe_err_name(KAFFE_ERR_REVOKED), "KAFFE_ERR_REVOKED");
    cr_assert_str_eq(kaffe_strerror(KAFFE_ERR_ACK_DUPLICATE), "Offset was already acked");
}

Test(error, librdkafka_codes_keep_their_text_and_full_enum_name) {
    cr_assert_str_eq(kaffe_strerror(RD_KAFKA_RESP_ERR__TIMED_OUT),
                     rd_kafka_err2str(RD_KAFKA_RESP_ERR__TIMED_OUT));
    cr_assert_str_eq(kaffe_err_name(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
                     "RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART");
    cr_assert_str_eq(kaffe_err_name(RD_KAFKA_RESP_ERR__FATAL), "RD_KAFKA_RESP_ERR__FATAL");
    cr_assert_str_eq(kaffe_err_name(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS),
                     "RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS");
}

Test(error, every_librdkafka_code_has_its_prefixed_name) {
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++) {
        if (!descs[i].name || descs[i].code == RD_KAFKA_RESP_ERR_NO_ERROR) /* KAFFE_OK */
            continue;
        char want[128];
        snprintf(want, sizeof want, "RD_KAFKA_RESP_ERR_%s", descs[i].name);
        cr_assert_str_eq(kaffe_err_name(descs[i].code), want);
    }
}

Test(error, unknown_codes_are_named_not_null) {
    cr_assert_str_eq(kaffe_err_name(-99999), "KAFFE_ERR_UNKNOWN");
    cr_assert_not_null(kaffe_strerror(-99999));
}
