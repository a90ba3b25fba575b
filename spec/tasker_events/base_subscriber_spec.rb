# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::BaseSubscriber do
  let(:namespace) { unique_namespace }

  before { TaskerEvents.start(logger: Logger.new(File::NULL)) }

  def publish_fast(name, payload = {}, **options)
    TaskerEvents.publish(name, payload, namespace:, delivery_mode: :fast, **options)
  end

  describe ".subscribes_to" do
    it "validates patterns when the class is defined" do
      expect { Class.new(described_class) { subscribes_to "payment..x" } }
        .to raise_error(ArgumentError, /invalid pattern "payment..x"/)
      expect { Class.new(described_class) { subscribes_to } }
        .to raise_error(ArgumentError, /at least one pattern/)
    end

    it "is inherited by subclasses that declare none" do
      parent = Class.new(described_class) { subscribes_to "payment.*" }
      expect(Class.new(parent).patterns).to eq(["payment.*"])
    end
  end

  describe "the event given to #handle" do
    it "is a frozen Hash with symbol keys, carrying the payload object that was published" do
      subscriber = recording_subscriber("payment.processed")
      task_uuid = "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5"
      payload = { "card" => { "last4" => "4242" }, amount: 99.99, at: Time.utc(2026, 12, 4) }
      id = publish_fast("payment.processed", payload, task_uuid:, step_name: "process_payment",
                                                      metadata: { region: "eu" },
                                                      execution_result: { success: true })
      TaskerEvents.flush

      event = subscriber.received.fetch(0)
      expect(event.keys).to contain_exactly(:event_id, :event_name, :event_version,
                                            :delivery_mode, :payload, :metadata,
                                            :execution_result)
      expect(event).to include(event_id: id, event_name: "payment.processed",
                               event_version: "1.0", delivery_mode: "fast")
      # Not a copy: what the step published, as ActiveSupport::Notifications hands it over.
      expect(event[:payload]).to be(payload)
      expect(event[:payload]).not_to be_frozen
      expect(event[:metadata]).to include(task_uuid:, correlation_id: task_uuid,
                                          step_name: "process_payment", namespace:,
                                          fired_by: "default", region: "eu")
      expect(event[:execution_result]).to eq(success: true)
      expect(event).to be_frozen
      expect(event[:metadata]).to be_frozen
    end

    it "carries the published object in a broadcast event too, and the JSON form to PGMQ" do
      TaskerEvents.shutdown
      TaskerEvents.start(test_mode: true, logger: Logger.new(File::NULL))
      TaskerEvents.clear_captured
      subscriber = recording_subscriber("payment.processed")
      payload = { "card" => { "last4" => "4242" }, method: :card }
      TaskerEvents.publish("payment.processed", payload, namespace:, delivery_mode: :broadcast)
      TaskerEvents.flush

      expect(subscriber.received.fetch(0)[:payload]).to be(payload)
      message = TaskerEvents.captured_messages.fetch(0)[:message]
      expect(message[:payload]).to eq(card: { last4: "4242" }, method: "card")
    end
  end

  describe "hooks" do
    it "skips the event when before_handle returns false" do
      subscriber = recording_subscriber("a.*")
      def subscriber.before_handle(event) = event[:event_name] != "a.skip"
      publish_fast("a.skip")
      publish_fast("a.keep")
      TaskerEvents.flush
      expect(subscriber.received.map { |e| e[:event_name] }).to eq(["a.keep"])
    end

    it "calls after_handle after handle" do
      calls = []
      subscriber = recording_subscriber("a.b") { calls << :handle }
      subscriber.define_singleton_method(:after_handle) { |_event| calls << :after }
      publish_fast("a.b")
      TaskerEvents.flush
      expect(calls).to eq(%i[handle after])
    end
  end

  describe "a subscriber that raises" do
    it "is passed to on_handle_error, counted, and does not stop the others" do
      errors = []
      failing = recording_subscriber("a.b") { raise "boom" }
      failing.define_singleton_method(:on_handle_error) { |_event, error| errors << error }
      healthy = recording_subscriber("a.b")

      change = stat_change(:subscriber_errors, :ruby) do
        2.times { publish_fast("a.b") }
        TaskerEvents.flush
      end

      expect(change).to eq(2)
      expect(errors.map(&:message)).to eq(%w[boom boom])
      expect(healthy.received.size).to eq(2)
      expect(failing.stats).to eq(received: 2, errors: 2, timeouts: 0)
    end

    it "is contained when it never implemented #handle (a ScriptError, not a StandardError)" do
      unfinished = Class.new(described_class) { subscribes_to "a.b" }.new
      TaskerEvents::SubscriberRegistry.instance.register_instance(unfinished).start_all!
      healthy = recording_subscriber("a.b")

      change = stat_change(:subscriber_errors, :ruby) do
        2.times { publish_fast("a.b") }
        TaskerEvents.flush
      end

      expect(change).to eq(2)
      expect(unfinished.stats).to eq(received: 2, errors: 2, timeouts: 0)
      expect(healthy.received.size).to eq(2)
      expect(TaskerEvents.event_system.drain_thread).to be_alive
    end

    it "logs the error with the event's identifiers" do
      log = StringIO.new
      TaskerEvents.logger = Logger.new(log)
      recording_subscriber("a.b") { raise ArgumentError, "bad amount" }
      id = publish_fast("a.b")
      TaskerEvents.flush
      expect(log.string).to include("ArgumentError: bad amount", "event_id=#{id}",
                                    "namespace=#{namespace}")
    ensure
      TaskerEvents.logger = nil
    end
  end

  # The contract the shared examples check holds for the smallest subclass: patterns and a
  # handle, everything else inherited.
  it_behaves_like "a tasker_events subscriber",
                  Class.new(TaskerEvents::BaseSubscriber) {
                    subscribes_to "payment.*", "refund.#"
                    def handle(_event) = nil
                  }

  describe "#stop!" do
    it "stops only that subscriber" do
      stopped = recording_subscriber("a.b")
      running = recording_subscriber("a.b")
      stopped.stop!
      publish_fast("a.b")
      TaskerEvents.flush
      expect(stopped).not_to be_active
      expect(stopped.received).to be_empty
      expect(running.received.size).to eq(1)
    end
  end
end
