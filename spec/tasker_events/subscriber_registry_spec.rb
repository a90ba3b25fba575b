# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::SubscriberRegistry do
  subject(:registry) { described_class.instance }

  let(:namespace) { unique_namespace }
  let(:audit_class) do
    Class.new(TaskerEvents::BaseSubscriber) do
      subscribes_to "payment.*", "refund.#"
      def self.name = "PaymentAudit"
      def received = (@received ||= [])
      def handle(event) = received << event[:event_name]
    end
  end

  def publish_fast(name)
    TaskerEvents.publish(name, {}, namespace:, delivery_mode: :fast)
  end

  def received_by(klass)
    registry.subscribers.find { |s| s.instance_of?(klass) }.received
  end

  before { TaskerEvents.start }

  it "instantiates registered classes at start_all! and routes by pattern" do
    registry.register(audit_class)
    expect(registry.count).to eq(1)
    expect(registry).not_to be_started

    registry.start_all!
    %w[payment.processed refund.issued refund.card.issued payment.card.declined].each do |name|
      publish_fast(name)
    end
    TaskerEvents.flush

    expect(received_by(audit_class)).to eq(%w[payment.processed refund.issued refund.card.issued])
  end

  it "is idempotent" do
    registry.register(audit_class)
    registry.register(audit_class)
    3.times { registry.start_all! }
    publish_fast("payment.processed")
    TaskerEvents.flush
    expect(registry.count).to eq(1)
    expect(received_by(audit_class).size).to eq(1)
  end

  it "applies the documented pattern rules" do
    patterns = ["*", "#", "payment.*", "payment.#", "*.processed", "payment.processed"]
    names = %w[payment.processed payment.card.declined order.processed]
    subscribers = patterns.to_h { |pattern| [pattern, recording_subscriber(pattern)] }
    names.each { |name| publish_fast(name) }
    TaskerEvents.flush

    received = subscribers.transform_values { |s| s.received.map { |e| e[:event_name] } }
    expect(received).to eq(
      "*" => names, "#" => names,
      "payment.*" => %w[payment.processed],
      "payment.#" => %w[payment.processed payment.card.declined],
      "*.processed" => %w[payment.processed order.processed],
      "payment.processed" => %w[payment.processed]
    )
  end

  it "matches with the same rules as the core, including # for zero segments" do
    expect(TaskerEvents::Native.pattern_matches?("payment.#", "payment")).to be(true)
    expect(TaskerEvents::Native.pattern_matches?("payment.*", "payment")).to be(false)
    expect(TaskerEvents::Native.pattern_matches?("#.declined", "payment.card.declined")).to be(true)
  end

  it "stop_all! stops delivery and start_all! resumes it" do
    registry.register(audit_class).start_all!
    registry.stop_all!
    publish_fast("payment.processed")
    TaskerEvents.flush
    expect(received_by(audit_class)).to be_empty

    registry.start_all!
    publish_fast("payment.processed")
    TaskerEvents.flush
    expect(received_by(audit_class).size).to eq(1)
  end

  it "reports per-subscriber stats" do
    registry.register(audit_class).start_all!
    publish_fast("payment.processed")
    TaskerEvents.flush
    expect(registry.stats).to include(started: true, registered: 1, active: 1)
    expect(registry.stats[:subscribers].first)
      .to include(class: "PaymentAudit", patterns: ["payment.*", "refund.#"], received: 1)
  end

  it "rejects what is not a subscriber" do
    expect { registry.register(String) }.to raise_error(ArgumentError, /BaseSubscriber/)
    expect { registry.register_instance(Object.new) }.to raise_error(ArgumentError)
    expect { registry.register(Class.new(TaskerEvents::BaseSubscriber)) }
      .to raise_error(ArgumentError, /declares no patterns/)
  end

  it "reset! forgets every registration" do
    registry.register(audit_class).start_all!
    registry.reset!
    expect(registry.count).to eq(0)
    expect(registry).not_to be_started
  end
end
