# frozen_string_literal: true

require "pg"

module Bench
  # Durable events into PGMQ, against what a Ruby worker would write by hand with ruby-pg:
  # one `pgmq.send` per event, and `pgmq.send_batch` of 1,000 messages (about the most
  # PostgreSQL takes here).
  module Durable
    RAW_BATCH = 1000
    PER_EVENT_FIGURE = "durable events/s, one Ruby thread"
    PER_EVENT_PEER = "events/s (pgmq.send per event, ruby-pg)"
    BATCH_FIGURE = "durable events/s vs raw send_batch"
    BATCH_PEER = "events/s (send_batch of 1000, ruby-pg)"

    def self.start(url, capacity)
      TaskerEvents.start(database_url: url, install_pgmq: true, command_buffer_size: capacity,
                         durable_buffer_size: capacity, durable_batch_size: 1000,
                         logger: Logger.new($stderr, level: Logger::ERROR))
    end

    def self.namespace = "bench_#{SecureRandom.hex(3)}"

    def self.publish(payload, namespace)
      TaskerEvents.publish("bench.payment_processed", payload, namespace:)
    end

    # Events per second from publishing `events` to a fresh queue until all are written.
    def self.our_rate(payload, events)
      queue = namespace
      publish(payload, queue) # creates the queue outside the timing
      TaskerEvents.flush(timeout: 30) or raise "flush timed out"
      started = Bench.monotonic
      events.times { publish(payload, queue) }
      TaskerEvents.flush(timeout: 300) or raise "flush timed out"
      events / (Bench.monotonic - started)
    end

    # The message our publisher writes, built the same way for the raw peers.
    def self.message(payload)
      JSON.generate(event_id: SecureRandom.uuid, event_name: "bench.payment_processed",
                    event_version: "1.0", delivery_mode: "durable", payload:,
                    metadata: { namespace: "bench", fired_at: Time.now.utc.iso8601(6) },
                    execution_result: nil)
    end

    def self.raw_queue(connection)
      name = "#{namespace}_domain_events"
      connection.exec_params("SELECT pgmq.create($1)", [name])
      name
    end

    def self.per_event_rate(connection, payload, events)
      queue = raw_queue(connection)
      started = Bench.monotonic
      events.times do
        connection.exec_params("SELECT pgmq.send($1, $2::jsonb)", [queue, message(payload)])
      end
      events / (Bench.monotonic - started)
    end

    def self.batch_rate(connection, payload, events)
      queue = raw_queue(connection)
      encoder = PG::TextEncoder::Array.new
      started = Bench.monotonic
      (events / RAW_BATCH).times do
        batch = encoder.encode(Array.new(RAW_BATCH) { message(payload) })
        connection.exec_params("SELECT pgmq.send_batch($1, $2::jsonb[])", [queue, batch])
      end
      events / (Bench.monotonic - started)
    end

    def self.throughput(report, url:, runs:, events:)
      start(url, events * 2)
      connection = PG.connect(url)
      rates = {}
      PAYLOADS.each do |label, payload|
        ours = Bench.sample(runs) { our_rate(payload, events) }
        single = Bench.sample(runs) { per_event_rate(connection, payload, events / 10) }
        batch = Bench.sample(runs) { batch_rate(connection, payload, events) }
        rates[label] = ours.median
        report << rate_row(label, ours, single, minimum: 10, figure: PER_EVENT_FIGURE,
                                                peer_name: PER_EVENT_PEER)
        report << rate_row(label, ours, batch, minimum: 0.7, figure: BATCH_FIGURE,
                                               peer_name: BATCH_PEER)
      end
      rates
    ensure
      connection&.close
      TaskerEvents.shutdown
    end

    def self.rate_row(label, ours, peer, figure:, peer_name:, minimum:)
      ratio = ours.median / peer.median
      Row.new(figure:, payload: label, ours: ours.median, unit: "events/s", peer: peer.median,
              peer_name:, ratio:, target: ">= #{minimum}x", met: ratio >= minimum,
              spread: ours.spread)
    end
  end
end
