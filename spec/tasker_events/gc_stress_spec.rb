# frozen_string_literal: true

require "spec_helper"

# The extension holds Ruby values while it converts them and hands Ruby objects to the drain
# thread. Under GC.stress a collection runs at every allocation, so a value it forgot to keep
# reachable is freed and reused at once, and the results below come out wrong or crash.
RSpec.describe "the native bridge under GC.stress" do
  let(:namespace) { unique_namespace("gc") }

  def stressed
    GC.stress = true
    yield
  ensure
    GC.stress = false
  end

  it "converts, routes and delivers events intact" do
    TaskerEvents.start(test_mode: true)
    subscriber = recording_subscriber("gc.*")
    payloads = Array.new(5) do |i|
      { "id" => "evt-#{i}", items: [{ sku: "A#{i}", price: i * 1.5 }], at: Time.utc(2026, 1, i + 1),
        tags: %i[x y], note: "ü" * i }
    end

    ids = stressed do
      payloads.map do |payload|
        TaskerEvents.publish("gc.checked", payload, namespace:, delivery_mode: :broadcast,
                                                    metadata: { region: "eu" })
      end
    end
    expect(TaskerEvents.flush(timeout: 30)).to be(true)

    expect(subscriber.received.map { |e| e[:event_id] }).to eq(ids)
    received = subscriber.received.map { |e| e[:payload] }
    expect(received.map(&:object_id)).to eq(payloads.map(&:object_id))
    expect(received.map { |p| p[:items].first[:sku] }).to eq(%w[A0 A1 A2 A3 A4])
    expect(stressed { TaskerEvents.stats }[:published][:broadcast]).to be >= 5
    captured = stressed { TaskerEvents.captured_messages }
    expect(captured.last[:message][:payload][:note]).to eq("üüüü")
    expect(stressed { TaskerEvents.metrics_text }).to include("event_name=\"gc.checked\"")
  end

  it "keeps fast payloads that only the queue references alive, in place, until delivered" do
    # Under GC.stress publishing is slow; the held subscriber must not time out meanwhile.
    TaskerEvents.start(dispatch_timeout_ms: 120_000)
    # Events kept by an earlier test-mode capture hold their payloads too.
    pinned_before = TaskerEvents::Native.pinned_payloads
    gate = Queue.new
    subscriber = recording_subscriber("gc.*") { gate.pop }
    publish = lambda do |i|
      TaskerEvents.publish("gc.pinned", { "id" => "evt-#{i}", items: [{ sku: "A#{i}" * 3 }] },
                           namespace:, delivery_mode: :fast)
    end
    # The first event holds the drain thread, so the others wait in the queue, their payloads
    # built here and referenced from nowhere else.
    publish.call(0)
    expect(wait_until { subscriber.received.size == 1 }).to be(true)
    stressed { (1...20).each(&publish) }
    expect(TaskerEvents::Native.pinned_payloads - pinned_before).to eq(19)
    GC.start(full_mark: true, immediate_sweep: true)
    GC.compact if GC.respond_to?(:compact)
    20.times { gate << :go }
    expect(TaskerEvents.flush(timeout: 30)).to be(true)

    received = subscriber.received.map { |e| e[:payload] }
    expect(received.map { |p| p["id"] }).to eq(Array.new(20) { |i| "evt-#{i}" })
    expect(received.map { |p| p[:items].first[:sku] }).to eq(Array.new(20) { |i| "A#{i}" * 3 })
    expect(TaskerEvents::Native.pinned_payloads).to eq(pinned_before)
  end

  it "refuses bad input with the right error" do
    TaskerEvents.start(test_mode: true)
    error = stressed do
      TaskerEvents.publish("gc.checked", { deep: [{ bad: Float::NAN }] }, namespace:)
    rescue TaskerEvents::ValidationError => e
      e
    end
    expect(error.message).to eq("payload.deep[0].bad: NaN has no JSON form")
  end
end
