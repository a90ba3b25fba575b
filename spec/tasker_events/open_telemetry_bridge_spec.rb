# frozen_string_literal: true

require "spec_helper"

# The OpenTelemetry SDK is not a dependency of the gem (nor installable here), so these specs
# use a meter provider that records what the bridge calls (spec/support/recording_meter.rb).
RSpec.describe TaskerEvents::OpenTelemetryBridge do
  let(:provider) { RecordingMeter::Provider.new }
  let(:namespace) { unique_namespace("otel") }
  let(:published) { "tasker.domain_events.published.total" }

  def publish_fast(count, name = "otel.checked")
    count.times { TaskerEvents.publish(name, {}, namespace:, delivery_mode: :fast) }
    expect(TaskerEvents.flush(timeout: 5)).to be(true)
  end

  it "adds to the OpenTelemetry counters only what was counted since the last report" do
    TaskerEvents.start
    bridge = described_class.new(meter_provider: provider)
    attributes = { "event_name" => "otel.checked", "namespace" => namespace }

    publish_fast(3)
    bridge.report
    counter = provider.instruments.fetch(published)
    expect(counter.kind).to eq(:counter)
    expect(counter.total(attributes)).to eq(3)

    bridge.report
    expect(counter.total(attributes)).to eq(3)

    publish_fast(2)
    bridge.report
    expect(counter.total(attributes)).to eq(5)
    expect(counter.calls.select { |_, attrs| attrs == attributes }.map(&:first)).to eq([3, 2])
    expect(provider.meters).to eq([["tasker_events", TaskerEvents::VERSION]])
  end

  it "creates every instrument with its kind, unit and description" do
    described_class.new(meter_provider: provider).report
    kinds = TaskerEvents.metrics.to_h { |i| [i[:name], i[:kind]] }
    expect(provider.instruments.keys).to match_array(kinds.keys)
    expect(provider.instruments["tasker.domain_events.queued"].kind).to eq(:up_down_counter)
    histogram = provider.instruments["tasker.domain_events.durable_write.duration"]
    expect(histogram.kind).to eq(:histogram)
    expect(histogram.options).to include(unit: "s", description: a_string_matching(/PGMQ/))
  end

  it "records each durable write latency in the histogram", :integration do
    TaskerEvents.start(database_url: PrivatePostgres.url, install_pgmq: true)
    bridge = described_class.new(meter_provider: provider).start
    4.times do
      TaskerEvents.publish("otel.written", {}, namespace:)
      expect(TaskerEvents.flush(timeout: 10)).to be(true)
    end
    bridge.stop

    histogram = provider.instruments.fetch("tasker.domain_events.durable_write.duration")
    mine = histogram.calls.select { |_, attrs| attrs["namespace"] == namespace }
    expect(mine.size).to eq(4)
    expect(mine.map(&:last).uniq).to eq([{ "namespace" => namespace, "outcome" => "ok" }])
    expect(mine.map(&:first)).to all(be_a(Float).and(be > 0).and(be < 10))
  end

  it "reports on its own thread until stopped, then once more" do
    TaskerEvents.start
    bridge = described_class.new(meter_provider: provider, interval: 0.02).start
    publish_fast(1)
    attributes = { "event_name" => "otel.checked", "namespace" => namespace }
    deadline = Time.now + 5
    sleep 0.01 until provider.instruments[published]&.total(attributes) == 1 || Time.now > deadline
    expect(provider.instruments[published].total(attributes)).to eq(1)

    publish_fast(1)
    bridge.stop
    expect(provider.instruments[published].total(attributes)).to eq(2)
  end

  it "keeps reporting after an exporter raises, and logs the failure" do
    log = StringIO.new
    TaskerEvents.start(logger: Logger.new(log))
    failing = RecordingMeter::Provider.new
    calls = 0
    failing.define_singleton_method(:create_counter) do |*|
      calls += 1
      raise IOError, "exporter down" if calls == 1

      RecordingMeter::Instrument.new(:counter, {})
    end
    bridge = described_class.new(meter_provider: failing, interval: 0.02).start
    deadline = Time.now + 5
    sleep 0.01 until calls > 1 || Time.now > deadline
    bridge.stop
    expect(calls).to be > 1
    expect(log.string).to include("OpenTelemetry report failed: IOError: exporter down")
  end

  it "refuses a missing meter provider and a bad interval" do
    hide_const("OpenTelemetry")
    expect { described_class.new }.to raise_error(TaskerEvents::ConfigError, /meter provider/)
    expect { described_class.new(meter_provider: provider, interval: 0) }
      .to raise_error(TaskerEvents::ConfigError, /interval must be positive, got 0/)
  end
end
