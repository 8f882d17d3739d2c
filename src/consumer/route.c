/* Topic routes: one consumer (one group member) running each topic with its
 * own handler, ordering, on_error, in-flight limits and, when it asks for
 * one, its own share of workers (a pool of its own, so a slow topic cannot
 * take the workers another topic needs). Built at kaffe_consumer_new from
 * kaffe_conf_set_topic_handler and topic.<topic>.<property>; the poll thread
 * looks a message's route up by topic (cached per topic handle, see
 * dispatch.c); assignments take their lanes, limits and pool from it;
 * workers call its handler; the failure path applies its on_error. */

#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "consumer/internal.h"

size_t consumer_route_lanes(int ordering, size_t workers) {
    if (ordering == ORDER_PARTITION)
        return 1;
    if (ordering == ORDER_UNORDERED)
        return 0;
    /* The most lanes a partition makes (on demand, one per key in flight):
     * 4 per worker, so that a worker finishing a key finds another key's
     * lane ready. */
    size_t lanes = workers * 4;
    return lanes < 16 ? 16 : lanes > 4096 ? 4096 : lanes;
}

/* An int setting of route i, or the consumer's. */
static int64_t route_int(const kaffe_conf_t *conf, size_t i, const char *name, int64_t dflt) {
    const char *v = conf_route_value(conf, i, name);
    return v ? strtoll(v, NULL, 10) : dflt;
}

/* The index of value among choices ("a|b|c"), or dflt. */
static int route_choice(const kaffe_conf_t *conf, size_t i, const char *name, const char *choices,
                        int dflt) {
    const char *v = conf_route_value(conf, i, name);
    if (!v)
        return dflt;
    size_t len = strlen(v);
    int index = 0;
    for (const char *c = choices; *c; index++) {
        const char *bar = strchr(c, '|');
        size_t n = bar ? (size_t)(bar - c) : strlen(c);
        if (n == len && memcmp(c, v, n) == 0)
            return index;
        c += n + (bar ? 1 : 0);
    }
    return dflt; /* validated by kaffe_conf_set: not reached */
}

bool consumer_routes_init(kaffe_consumer_t *c, const kaffe_conf_t *conf) {
    c->default_route = (route_t){.ordering = c->ordering,
                                 .lanes = c->lanes_per_partition,
                                 .on_error = c->on_error,
                                 .max_in_flight = c->max_in_flight,
                                 .max_in_flight_bytes = c->max_in_flight_bytes};
    size_t n = conf_route_count(conf);
    if (n == 0)
        return true;
    c->routes = calloc(n, sizeof *c->routes);
    if (!c->routes)
        return false;
    for (size_t i = 0; i < n; i++) {
        route_t *r = &c->routes[i];
        *r = c->default_route;
        if (!(r->topic = strdup(conf_route_topic(conf, i))))
            return false;
        c->route_count++;
        r->handler = conf_route_handler(conf, i, &r->opaque);
        r->ordering = route_choice(conf, i, "ordering", "partition|key|unordered", c->ordering);
        /* enum policy starts in on_error's choices' order. */
        r->on_error =
            route_choice(conf, i, "on_error", "stop|retry|dead_letter|pause", c->on_error);
        r->max_in_flight = route_int(conf, i, "max_in_flight_messages", c->max_in_flight);
        r->max_in_flight_bytes = route_int(conf, i, "max_in_flight_bytes", c->max_in_flight_bytes);
        r->workers = (size_t)route_int(conf, i, "workers", 0);
        r->lanes = consumer_route_lanes(r->ordering, r->workers ? r->workers : c->workers);
    }
    return true;
}

kaffe_status_t consumer_routes_start(kaffe_consumer_t *c) {
    c->default_route.pool = c->pool;
    for (size_t i = 0; i < c->route_count; i++) {
        route_t *r = &c->routes[i];
        r->pool = c->pool;
        if (r->workers == 0)
            continue;
        pool_t *own = pool_new(r->workers, consumer_message_run, c);
        if (!own) {
            consumer_routes_stop(c);
            return KAFFE_ERR_NOMEM;
        }
        pool_set_hold_cb(own, consumer_failure_hold_cb);
        r->pool = own;
    }
    return KAFFE_OK;
}

void consumer_routes_stop(kaffe_consumer_t *c) {
    for (size_t i = 0; i < c->route_count; i++) {
        route_t *r = &c->routes[i];
        if (r->pool && r->pool != c->pool)
            pool_destroy(r->pool);
        r->pool = NULL;
    }
    c->default_route.pool = NULL;
}

void consumer_routes_free(kaffe_consumer_t *c) {
    for (size_t i = 0; i < c->route_count; i++)
        free(c->routes[i].topic);
    free(c->routes);
    c->routes = NULL;
    c->route_count = 0;
}

const route_t *consumer_route_find(const kaffe_consumer_t *c, const char *topic) {
    for (size_t i = 0; i < c->route_count; i++)
        if (strcmp(c->routes[i].topic, topic) == 0)
            return &c->routes[i];
    return &c->default_route;
}
