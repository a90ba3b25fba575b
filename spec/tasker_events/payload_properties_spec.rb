# frozen_string_literal: true

require "spec_helper"
require "json"

# Generated payloads through the Ruby→JSON conversion: whatever a step publishes, a PGMQ
# consumer parses it from the captured message as JSON would carry it (strings for symbols),
# and a Ruby subscriber of the same broadcast event receives the published object itself.
RSpec.describe "payload conversion properties" do
  let(:namespace) { unique_namespace("prop") }
  # Reproducible from RSpec's --seed, like the example order.
  let(:random) { Random.new(RSpec.configuration.seed) }

  let(:characters) { [*"a".."z", "é", "→", " ", "\"", "\\"] }

  def scalar
    case random.rand(5)
    when 0 then random.rand((-2**63)...(2**63))
    when 1 then random_float
    when 2 then random_string
    else [:ok, :card, true, false, nil].sample(random:)
    end
  end

  def random_string
    Array.new(random.rand(0..12)) { characters.sample(random:) }.join
  end

  def random_float
    (random.rand - 0.5) * (10**random.rand(-5..15))
  end

  def value(depth = 0)
    return scalar if depth > 4 || random.rand < 0.4

    children = Array.new(random.rand(0..4)) { value(depth + 1) }
    return children if random.rand < 0.5

    children.each_with_index.to_h { |child, i| ["k#{i * 7}", child] }
  end

  # What JSON makes of a Ruby value, with symbol keys as subscribers get them.
  def as_json_would(value)
    JSON.parse(JSON.generate(value), symbolize_names: true)
  end

  it "writes 200 generated payloads exactly as JSON would carry them" do
    TaskerEvents.start(test_mode: true)
    subscriber = recording_subscriber("prop.*")
    payloads = Array.new(200) { { v: value } }
    payloads.each do |payload|
      TaskerEvents.publish("prop.generated", payload, namespace:, delivery_mode: :broadcast)
    end
    expect(TaskerEvents.flush(timeout: 10)).to be(true)

    expected = payloads.map { |payload| as_json_would(payload) }
    received = subscriber.received.map { |event| event[:payload] }
    expect(received.map(&:object_id)).to eq(payloads.map(&:object_id))
    captured = TaskerEvents.captured_messages.last(200).map { |m| m[:message][:payload] }
    expect(captured).to eq(expected)
  end
end
