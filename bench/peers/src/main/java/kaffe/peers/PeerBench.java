package kaffe.peers;

import io.confluent.parallelconsumer.ParallelConsumerOptions;
import io.confluent.parallelconsumer.ParallelConsumerOptions.CommitMode;
import io.confluent.parallelconsumer.ParallelConsumerOptions.ProcessingOrder;
import io.confluent.parallelconsumer.ParallelStreamProcessor;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One peer run for scripts/bench-peers.sh: consumes N messages of a topic in a
 * new consumer group and prints one JSON line with the rate between the first
 * and the last message handled (group join and JVM start excluded, as for
 * every contender of the table).
 *
 * <pre>
 *   PeerBench MODE BOOTSTRAP TOPIC GROUP MESSAGES CONCURRENCY SLEEP_MS
 *   MODE: pc-unordered | pc-key | pc-partition | java-raw
 * </pre>
 */
public final class PeerBench {
    private static final AtomicLong handled = new AtomicLong();
    private static volatile long firstNs;
    private static volatile long lastNs;

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println(
                    "usage: PeerBench MODE BOOTSTRAP TOPIC GROUP MESSAGES CONCURRENCY SLEEP_MS");
            System.exit(2);
        }
        String mode = args[0];
        long messages = Long.parseLong(args[4]);
        int concurrency = Integer.parseInt(args[5]);
        long sleepMs = Long.parseLong(args[6]);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args[3]);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
        if (mode.equals("java-raw")) {
            rawLoop(consumer, args[2], messages, deadline);
        } else {
            parallel(consumer, mode, args[2], messages, concurrency, sleepMs, deadline);
        }
        long n = handled.get();
        double seconds = (lastNs - firstNs) / 1e9;
        double rate = n > 1 && seconds > 0 ? (n - 1) / seconds : 0;
        System.out.printf(
                "{\"mode\":\"%s\",\"handled\":%d,\"seconds\":%.6f,\"rate\":%.1f}%n",
                mode, n, seconds, rate);
        System.exit(n >= messages ? 0 : 1);
    }

    private static void record() {
        long now = System.nanoTime();
        if (handled.incrementAndGet() == 1)
            firstNs = now;
        lastNs = now;
    }

    /** The JVM floor: poll, count, commit synchronously at the end. */
    private static void rawLoop(KafkaConsumer<byte[], byte[]> consumer, String topic,
            long messages, long deadline) {
        consumer.subscribe(List.of(topic));
        while (handled.get() < messages && System.nanoTime() < deadline) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
            for (ConsumerRecord<byte[], byte[]> r : records)
                record();
        }
        consumer.commitSync();
        consumer.close();
    }

    private static void parallel(KafkaConsumer<byte[], byte[]> consumer, String mode,
            String topic, long messages, int concurrency, long sleepMs, long deadline)
            throws InterruptedException {
        ProcessingOrder order = switch (mode) {
            case "pc-unordered" -> ProcessingOrder.UNORDERED;
            case "pc-key" -> ProcessingOrder.KEY;
            case "pc-partition" -> ProcessingOrder.PARTITION;
            default -> throw new IllegalArgumentException("unknown mode " + mode);
        };
        ParallelConsumerOptions<byte[], byte[]> options =
                ParallelConsumerOptions.<byte[], byte[]>builder()
                        .ordering(order)
                        .maxConcurrency(concurrency)
                        .consumer(consumer)
                        .commitMode(CommitMode.PERIODIC_CONSUMER_ASYNCHRONOUS)
                        .build();
        ParallelStreamProcessor<byte[], byte[]> pc =
                ParallelStreamProcessor.createEosStreamProcessor(options);
        CountDownLatch done = new CountDownLatch(1);
        pc.subscribe(List.of(topic));
        pc.poll(context -> {
            if (sleepMs > 0) {
                try {
                    Thread.sleep(sleepMs);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            record();
            if (handled.get() >= messages)
                done.countDown();
        });
        done.await(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        pc.closeDontDrainFirst();
    }
}
