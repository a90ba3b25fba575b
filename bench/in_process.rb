# frozen_string_literal: true

require "active_support"
require "active_support/notifications"
require "wisper"

module Bench
  # Fast delivery to Ruby subscribers, against ActiveSupport::Notifications and wisper (each
  # with one subscriber that does what ours does: count) and against the reference design,
  # which polls Ruby every 50 ms for at most 10 events.
  module InProcess
    REFERENCE_CEILING = 200.0 # events/s: 10 events per 50 ms poll
    REFERENCE_LATENCY_MS = 50.0

    # Counts what the drain thread hands it, and notes when the last event arrived.
    class Counter < TaskerEvents::BaseSubscriber
      subscribes_to "bench.#"
      class << self
        attr_accessor :count, :last_at, :arrivals
      end
      self.count = 0

      def handle(_event)
        self.class.count += 1
        self.class.arrivals&.push(Bench.monotonic)
      end
    end

    # The wisper side: a publisher and a listener that counts.
    class WisperSource
      include Wisper::Publisher

      def call(payload) = broadcast(:payment_processed, payload)
    end

    # The wisper listener: counts, as the others do.
    class WisperListener
      attr_reader :count

      def initialize = @count = 0
      def payment_processed(_payload) = @count += 1
    end

    def self.start(capacity)
      TaskerEvents::SubscriberRegistry.instance.register(Counter)
      TaskerEvents::SubscriberRegistry.instance.start_all!
      TaskerEvents.start(broadcast_buffer_size: capacity, command_buffer_size: capacity,
                         logger: Logger.new($stderr, level: Logger::ERROR))
    end

    def self.publish(payload, mode = :fast)
      TaskerEvents.publish("bench.payment_processed", payload, namespace: "bench",
                                                               delivery_mode: mode)
    end

    # @return [Float] caller-thread CPU ns per publish, called as a step would, without the
    #   helper above in between (ActiveSupport::Notifications is called directly too)
    def self.publish_cost(payload, iterations)
      cost = Bench.cpu_ns_per_call(iterations) do
        TaskerEvents.publish("bench.payment_processed", payload, namespace: "bench",
                                                                 delivery_mode: :fast)
      end
      TaskerEvents.flush(timeout: 60) or raise "flush timed out"
      cost
    end

    def self.caller_cost(report, runs:, iterations:)
      start(iterations * 2)
      notifications = 0
      ActiveSupport::Notifications.subscribe("payment.processed") { |*| notifications += 1 }
      source = WisperSource.new
      source.subscribe(WisperListener.new)

      PAYLOADS.each do |label, payload|
        ours = Bench.sample(runs) { publish_cost(payload, iterations) }
        as = Bench.sample(runs) do
          Bench.cpu_ns_per_call(iterations) do
            ActiveSupport::Notifications.instrument("payment.processed", payload)
          end
        end
        wisper = Bench.sample(runs) { Bench.cpu_ns_per_call(iterations) { source.call(payload) } }
        fastest = [as.median, wisper.median].min
        ratio = ours.median / fastest
        report << Row.new(
          figure: "publish, fast, 1 Ruby subscriber: caller CPU", payload: label,
          ours: ours.median, unit: "ns", peer: fastest,
          peer_name: "ns (AS::N #{as.median.round}, wisper #{wisper.median.round})",
          ratio:, target: "<= 0.5x", met: ratio <= 0.5, spread: ours.spread
        )
      end
    ensure
      TaskerEvents.shutdown
    end

    def self.throughput(report, runs:, events:)
      start(events * 2)
      PAYLOADS.each do |label, payload|
        rates = Bench.sample(runs) { delivery_rate(payload, events) }
        report << Row.new(
          figure: "Ruby subscriber delivery throughput", payload: label, ours: rates.median,
          unit: "events/s", peer: REFERENCE_CEILING, peer_name: "events/s (reference design)",
          ratio: rates.median / REFERENCE_CEILING, target: ">= 100000/s",
          met: rates.median >= 100_000, spread: rates.spread
        )
      end
    ensure
      TaskerEvents.shutdown
    end

    def self.delivery_rate(payload, events)
      Counter.count = 0
      started = Bench.monotonic
      events.times { publish(payload) }
      Bench.wait_until(60) { Counter.count >= events } or raise "only #{Counter.count} delivered"
      events / (Bench.monotonic - started)
    end

    def self.latency(report, samples:)
      start(10_000)
      PAYLOADS.each do |label, payload|
        sorted = latencies(payload, samples).sort
        p50 = Bench.percentile(sorted, 0.5)
        p99 = Bench.percentile(sorted, 0.99)
        report << Row.new(
          figure: "publish -> handle latency, unloaded, p50 / p99", payload: label,
          ours: "#{p50.round(3)} / #{p99.round(3)}", unit: "ms", peer: REFERENCE_LATENCY_MS,
          peer_name: "ms polling (reference)", ratio: REFERENCE_LATENCY_MS / p99,
          target: "p99 < 1 ms", met: p99 < 1.0
        )
      end
    ensure
      Counter.arrivals = nil
      TaskerEvents.shutdown
    end

    # Each event is published once the previous one arrived, so nothing queues up.
    def self.latencies(payload, samples)
      Counter.arrivals = Queue.new
      Array.new(samples + 50) do
        started = Bench.monotonic
        publish(payload)
        (Counter.arrivals.pop - started) * 1000
      end.drop(50)
    end
  end
end
