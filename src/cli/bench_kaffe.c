/* `kaffe bench` scenarios on the kaffe consumer. The consumer is being built
 * (issue 3); until it lands these scenarios report "not built yet". */
#include "cli/bench.h"

const bench_consumer_ops_t bench_kaffe_ops = {.start = NULL, .stop = NULL};
