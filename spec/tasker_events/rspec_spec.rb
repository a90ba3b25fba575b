# frozen_string_literal: true

require "spec_helper"

# require "tasker_events/rspec": starting test mode, the tag, the helpers and the recorder.
RSpec.describe TaskerEvents::RSpec do
  def publish(name, mode: :durable)
    TaskerEvents.publish(name, {}, namespace: "payments", delivery_mode: mode)
  end

  describe ".start_test_mode!" do
    it "starts TaskerEvents in test mode with an empty capture" do
      TaskerEvents.start(test_mode: true)
      publish("order.placed")
      TaskerEvents.shutdown

      expect(described_class.start_test_mode!).to be(true)
      expect(TaskerEvents).to be_test_mode
      expect(TaskerEvents.captured_events).to be_empty
    end

    it "only empties the capture when test mode already runs" do
      described_class.start_test_mode!
      publish("order.placed")
      TaskerEvents.flush
      expect(described_class.start_test_mode!).to be(false)
      expect(TaskerEvents.captured_messages).to be_empty
    end

    it "refuses to replace a system running without test mode" do
      TaskerEvents.start
      expect { described_class.start_test_mode! }
        .to raise_error(TaskerEvents::Error, "TaskerEvents is running without test_mode; call " \
                                             "TaskerEvents.shutdown before starting test mode")
      expect(TaskerEvents).not_to be_test_mode
    end

    it "starts with test_mode_settings, overridden by its own" do
      path = write_step_template("payments", [{ "name" => "payment.captured" }])
      saved = described_class.test_mode_settings
      described_class.test_mode_settings = { templates: [path], test_mode: false,
                                             dispatch_timeout_ms: 100 }
      described_class.start_test_mode!(dispatch_timeout_ms: 200)
      expect(TaskerEvents).to be_test_mode
      expect(TaskerEvents.event_system.configuration.settings[:dispatch_timeout_ms]).to eq(200)
      expect(TaskerEvents.dispatch_step_events(declared_step_context("payments"),
                                               { success: true })).to be(true)
    ensure
      described_class.test_mode_settings = saved
    end
  end

  describe "the :tasker_events_test_mode tag" do
    it "runs the example in test mode", :tasker_events_test_mode do
      expect(TaskerEvents).to be_test_mode
    end

    it "leaves untagged examples alone" do
      expect(TaskerEvents).not_to be_started
    end
  end

  describe ".build_event" do
    it "builds the event publish would, without publishing it" do
      payload = { "amount" => 5 }
      event = described_class.build_event("payment.processed", payload,
                                          namespace: "payments", delivery_mode: :broadcast,
                                          metadata: { region: "eu" })
      expect(event).to include(event_name: "payment.processed", event_version: "1.0",
                               delivery_mode: "broadcast", execution_result: nil)
      expect(event[:payload]).to be(payload)
      durable = described_class.build_event("payment.processed", payload, delivery_mode: :durable)
      expect(durable[:payload]).to eq(amount: 5)
      expect(event[:metadata]).to include(namespace: "payments", region: "eu",
                                          fired_by: "default")
      expect(event[:event_id]).to match(/\A\h{8}-\h{4}-7\h{3}-\h{4}-\h{12}\z/)
      expect(event).to be_frozen
      expect(event[:metadata]).to be_frozen
      expect { described_class.build_event("payment.processed") }
        .not_to(change { TaskerEvents.stats[:published] })
    end

    it "validates as publish does, naming what is wrong" do
      expect { described_class.build_event("payment") }
        .to raise_error(TaskerEvents::ValidationError, /"payment"/)
      expect { described_class.build_event("a.b", { x: Float::NAN }) }
        .to raise_error(TaskerEvents::ValidationError, /payload\.x: NaN has no JSON form/)
      expect { described_class.build_event("a.b", metadata: [1]) }
        .to raise_error(TaskerEvents::ValidationError, "metadata must be a Hash")
      expect { described_class.build_event("a.b", delivery_mode: :loud) }
        .to raise_error(TaskerEvents::ValidationError, /"loud"/)
    end
  end

  describe TaskerEvents::RSpec::Helpers, :tasker_events_test_mode do
    it "give the events and durable messages captured so far, after a flush" do
      subscriber = recording_subscriber("order.*") { sleep 0.01 }
      publish("order.placed")
      publish("order.viewed", mode: :fast)

      expect(published_domain_events.map { |e| e[:event_name] })
        .to eq(%w[order.placed order.viewed])
      expect(subscriber.received.size).to eq(1)
      expect(published_domain_events(delivery_mode: :durable).size).to eq(1)
      expect(captured_domain_messages.map { |m| m[:message][:event_name] }).to eq(["order.placed"])
      expect(captured_domain_messages(namespace: "billing")).to be_empty
    end

    it "build events to call a subscriber with" do
      expect(build_domain_event("a.b", { x: 1 })).to include(event_name: "a.b", payload: { x: 1 })
    end
  end

  describe TaskerEvents::RSpec::Recorder, :tasker_events_test_mode do
    it "records what the block published, per delivery mode" do
      publish("order.before")
      recording = record_domain_events do
        publish("order.placed")
        publish("order.viewed", mode: :fast)
        publish("order.paid", mode: :broadcast)
      end

      expect(recording).to be_settled
      expect(recording.missing).to eq(0)
      expect(recording.events.map { |e| e[:event_name] })
        .to eq(%w[order.placed order.viewed order.paid])
      expect(recording.by_mode.transform_values { |events| events.map { |e| e[:event_name] } })
        .to eq(durable: ["order.placed"], fast: ["order.viewed"], broadcast: ["order.paid"])
    end

    it "leaves subscribers and their counters as they would be without it" do
      subscriber = recording_subscriber("order.*")
      change = stat_change(:ruby_subscribers, :accepted) do
        record_domain_events { publish("order.viewed", mode: :fast) }
      end
      expect(change).to eq(1)
      expect(subscriber.received.size).to eq(1)
      expect(subscriber.stats).to include(received: 1, errors: 0)
    end

    it "counts events the block published that the capture no longer holds" do
      recording = record_domain_events do
        publish("order.placed")
        TaskerEvents.clear_captured
      end
      expect(recording.events).to be_empty
      expect(recording.missing).to eq(1)
    end

    it "lets an error in the block out" do
      expect { record_domain_events { raise IOError, "boom" } }.to raise_error(IOError, "boom")
    end
  end
end
