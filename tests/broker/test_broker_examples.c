/* examples/heroku against the real broker: Heroku mode over mutual TLS, the
 * way Heroku Kafka is used (KAFKA_URL=kafka+ssl://... and the three PEM
 * variables as text), run as a user would run the program. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/broker_env.h"
#include "support/subprocess.h"

#define LINE_TIMEOUT_MS 60000

Test(broker_examples, heroku_example_produces_and_consumes_over_mutual_tls) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
    const char *ssl = broker_env("KAFFE_BROKER_SSL");
    cr_assert_not_null(ssl, "KAFFE_BROKER_SSL missing from the env file");
    char *ca = broker_read_file(broker_env("KAFFE_BROKER_CA"));
    char *cert = broker_read_file(broker_env("KAFFE_BROKER_CLIENT_CERT"));
    char *key = broker_read_file(broker_env("KAFFE_BROKER_CLIENT_KEY"));
    cr_assert(ca && cert && key, "certificates missing from %s", broker_env("KAFFE_BROKER_DIR"));

    char url[160], topic[128], group[160];
    snprintf(url, sizeof url, "kafka+ssl://127.0.0.1:%s", strrchr(ssl, ':') + 1);
    setenv("KAFKA_URL", url, 1);
    setenv("KAFKA_CLIENT_CERT", cert, 1);
    setenv("KAFKA_CLIENT_CERT_KEY", key, 1);
    setenv("KAFKA_TRUSTED_CERT", ca, 1);
    broker_unique_topic(topic, sizeof topic, "example-heroku");
    snprintf(group, sizeof group, "%s-group", topic);
    setenv("KAFFE_GROUP", group, 1);
    cr_assert_eq(broker_create_topic(topic, 2, err, sizeof err), 0, "%s", err);

    char *argv[] = {EXAMPLE_HEROKU, topic, "5", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char lines[16][200];
    size_t count = 0;
    while (count < 16 &&
           subprocess_read_line(&sp, lines[count], sizeof lines[0], LINE_TIMEOUT_MS) == 0)
        count++;
    cr_assert_eq(subprocess_wait(&sp, LINE_TIMEOUT_MS), 0);
    cr_assert_eq(count, 8, "%zu lines", count);
    cr_assert_str_eq(lines[0], "brokers from KAFKA_URL (TLS)");
    cr_assert_str_eq(lines[1], "produced 5 messages");
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, " hello from heroku mode #%d", i);
        size_t seen = 0;
        for (size_t l = 2; l < 7; l++)
            seen += strstr(lines[l], want) != NULL;
        cr_assert_eq(seen, 1, "%s", want);
    }
    cr_assert_str_eq(lines[7], "consumed 5 messages");
    /* Nothing secret is printed: no PEM text on stdout. */
    for (size_t l = 0; l < count; l++)
        cr_assert_null(strstr(lines[l], "-----BEGIN"), "%s", lines[l]);
    free(ca);
    free(cert);
    free(key);
}
