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
    expect(received.map { |p| p[:items].first[:sku] }).to eq(%w[A0 A1 A2 A3 A4])
    expect(received.map { |p| p[:tags] }).to all(eq(%w[x y]))
    expect(received.last[:at]).to start_with("2026-01-05T00:00:00")
    expect(stressed { TaskerEvents.stats }[:published][:broadcast]).to be >= 5
    captured = stressed { TaskerEvents.captured_messages }
    expect(captured.last[:message][:payload][:note]).to eq("üüüü")
    expect(stressed { TaskerEvents.metrics_text }).to include("event_name=\"gc.checked\"")
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
