# frozen_string_literal: true

module TaskerEvents
  # Reports the gem's metrics through an OpenTelemetry meter provider (the
  # `opentelemetry-metrics-sdk` gem's, or any object with the same API), so they reach
  # whatever exporter the application configured.
  #
  # The core counts in Rust; every `interval` seconds, and once more at {#stop}, the bridge
  # adds to each OpenTelemetry counter what the core counted since the last report. Levels
  # (`tasker.domain_events.queued`) become up-down counters moved by the change. Durable write
  # latencies are recorded one by one into a histogram: the core keeps the latest 10,000
  # observations between reports and counts the ones it had to discard, which the bridge logs.
  #
  # @example
  #   require "opentelemetry/sdk"
  #   OpenTelemetry::SDK.configure
  #   bridge = TaskerEvents::OpenTelemetryBridge.new.start
  #   at_exit { bridge.stop }
  class OpenTelemetryBridge
    DEFAULT_INTERVAL = 10

    # @param meter_provider [#meter] default: `OpenTelemetry.meter_provider`
    # @param interval [Numeric] seconds between reports
    # @raise [ConfigError] without a meter provider, or for an interval that is not positive
    def initialize(meter_provider: nil, interval: DEFAULT_INTERVAL)
      @meter = resolve_provider(meter_provider).meter("tasker_events", version: VERSION)
      @interval = Float(interval)
      unless @interval.positive?
        raise ConfigError, "interval must be positive, got #{interval.inspect}"
      end

      @instruments = {}
      @reported = Hash.new(0)
      @discarded = 0
      @lock = Mutex.new
      @wake = ConditionVariable.new
      @thread = nil
    end

    # Reports every `interval` seconds on a background thread until {#stop}.
    # @return [self]
    def start
      @lock.synchronize do
        return self if @thread&.alive?

        Native.keep_latency_samples(true)
        @stopping = false
        @thread = Thread.new { run }
        @thread.name = "tasker_events-otel"
      end
      self
    end

    # Stops the thread after one last report.
    # @return [void]
    def stop
      thread = @lock.synchronize do
        @stopping = true
        @wake.signal
        @thread
      end
      thread&.join
      report
      Native.keep_latency_samples(false)
    end

    # Adds to the OpenTelemetry instruments what the core counted since the last report.
    # @return [void]
    def report
      @lock.synchronize do
        instruments = TaskerEvents.metrics
        histogram, others = instruments.partition { |i| i[:kind] == "histogram" }
        others.each { |instrument| report_instrument(instrument) }
        report_latencies(histogram.first)
      end
    end

    private

    def resolve_provider(meter_provider)
      return meter_provider if meter_provider
      return ::OpenTelemetry.meter_provider if defined?(::OpenTelemetry.meter_provider)

      raise ConfigError, "no meter provider: pass meter_provider: or load the OpenTelemetry SDK"
    end

    def run
      loop do
        @lock.synchronize { @wake.wait(@lock, @interval) unless @stopping }
        break if @lock.synchronize { @stopping }

        report
      rescue *USER_CODE_ERRORS => e
        # An exporter's error must not end the reports that follow.
        TaskerEvents.logger.warn("tasker_events: OpenTelemetry report failed: #{e.class}: #{e}")
      end
    end

    def report_instrument(instrument)
      otel = instrument_for(instrument)
      instrument[:points].each do |point|
        key = [instrument[:name], point[:attributes]]
        delta = point[:value] - @reported[key]
        next if delta.zero?

        otel.add(delta, attributes: attributes(point[:attributes]))
        @reported[key] = point[:value]
      end
    end

    def report_latencies(instrument)
      samples, discarded = Native.take_latency_samples
      histogram = instrument_for(instrument)
      samples.each do |sample|
        histogram.record(sample[:seconds], attributes: { "namespace" => sample[:namespace],
                                                         "outcome" => sample[:outcome] })
      end
      return if discarded == @discarded

      TaskerEvents.logger.warn("tasker_events: #{discarded - @discarded} durable write " \
                               "latencies were discarded before an OpenTelemetry report")
      @discarded = discarded
    end

    def instrument_for(instrument)
      @instruments[instrument[:name]] ||= begin
        create = { "counter" => :create_counter, "gauge" => :create_up_down_counter,
                   "histogram" => :create_histogram }.fetch(instrument[:kind])
        @meter.public_send(create, instrument[:name], unit: instrument[:unit],
                                                      description: instrument[:description])
      end
    end

    def attributes(symbol_keyed)
      symbol_keyed.transform_keys(&:to_s)
    end
  end
end
