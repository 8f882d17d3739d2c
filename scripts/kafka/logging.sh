# scripts/kafka/logging.sh: sourced by start.sh and cluster.sh.
#
# kafka_log_config DIR JARS [LOGGER...]: writes the broker's logging
# configuration into DIR for the Kafka whose jars are in JARS (Log4j 1 /
# reload4j for 3.x, Log4j 2 for 4.x), at INFO on stdout with
# org.apache.kafka.clients, kafka.request.logger and each LOGGER at WARN,
# and prints the java option that selects it.
kafka_log_config() { # dir jars [logger...]
    local dir=$1 jars=$2
    shift 2
    local quiet=(org.apache.kafka.clients kafka.request.logger "$@") logger i=0
    if ls "$jars"/log4j-core-2*.jar >/dev/null 2>&1; then
        {
            echo "appender.stdout.type=Console"
            echo "appender.stdout.name=STDOUT"
            echo "appender.stdout.layout.type=PatternLayout"
            echo "appender.stdout.layout.pattern=[%d] %p %m (%c)%n"
            echo "rootLogger.level=INFO"
            echo "rootLogger.appenderRef.stdout.ref=STDOUT"
            for logger in "${quiet[@]}"; do
                i=$((i + 1))
                echo "logger.q$i.name=$logger"
                echo "logger.q$i.level=WARN"
            done
        } >"$dir/log4j2.properties"
        echo "-Dlog4j2.configurationFile=file:$dir/log4j2.properties"
    else
        {
            echo "log4j.rootLogger=INFO, stdout"
            echo "log4j.appender.stdout=org.apache.log4j.ConsoleAppender"
            echo "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout"
            echo "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n"
            for logger in "${quiet[@]}"; do
                echo "log4j.logger.$logger=WARN"
            done
        } >"$dir/log4j.properties"
        echo "-Dlog4j.configuration=file:$dir/log4j.properties"
    fi
}
