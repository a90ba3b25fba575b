# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents do
  let(:namespace) { unique_namespace }

  describe ".start" do
    it "is idempotent" do
      expect(described_class.start).to be(true)
      expect(described_class.start).to be(false)
      expect(described_class).to be_started
    end

    it "rejects unknown settings, naming them" do
      expect { described_class.start(comand_buffer_size: 1) }
        .to raise_error(TaskerEvents::ConfigError, /:comand_buffer_size/)
      expect(described_class).not_to be_started
    end

    it "reports an unparsable database URL without its password" do
      expect { described_class.start(database_url: "postgres://u:hunter2@h:port/db") }
        .to raise_error(TaskerEvents::ConfigError) { |e|
          expect(e.message).to include("***")
          expect(e.message).not_to include("hunter2")
        }
    end
  end

  describe ".publish" do
    before { described_class.start }

    it "returns the event id" do
      id = described_class.publish("payment.processed", { amount: 1 }, namespace:,
                                                                       delivery_mode: :fast)
      expect(id).to match(/\A\h{8}-\h{4}-7\h{3}-\h{4}-\h{12}\z/)
    end

    it "raises ArgumentError naming an invalid event name" do
      %w[payment Payment.processed payment..processed].each do |name|
        expect { described_class.publish(name, {}, namespace:) }
          .to raise_error(ArgumentError, /#{Regexp.escape(name.inspect)}/)
      end
    end

    it "raises ArgumentError naming an invalid namespace" do
      ["Payments", "x; drop table", "a" * 34, ""].each do |bad|
        expect { described_class.publish("a.b", {}, namespace: bad) }
          .to raise_error(ArgumentError, /#{Regexp.escape(bad.inspect)}/)
      end
    end

    it "raises ArgumentError naming an invalid delivery mode or UUID" do
      expect { described_class.publish("a.b", {}, namespace:, delivery_mode: :loud) }
        .to raise_error(ArgumentError, /"loud"/)
      expect { described_class.publish("a.b", {}, namespace:, task_uuid: "t-1") }
        .to raise_error(ArgumentError, /task_uuid: "t-1"/)
    end

    it "raises ArgumentError naming where a payload value has no JSON form" do
      payload = { items: [{ price: Float::NAN }] }
      expect { described_class.publish("a.b", payload, namespace:) }
        .to raise_error(TaskerEvents::ValidationError, /payload\.items\[0\]\.price/)
      expect { described_class.publish("a.b", { x: Object.new }, namespace:) }
        .to raise_error(ArgumentError, /payload\.x: a value of class Object/)
    end

    it "drops durable events when no database is configured, without raising" do
      dropped = stat_change(:durable, :dropped, :no_database) do
        expect(described_class.publish("a.b", {}, namespace:)).to be_nil
      end
      expect(dropped).to eq(1)
    end

    it "counts events published per delivery mode" do
      change = stat_change(:published, :fast) do
        2.times { described_class.publish("a.b", {}, namespace:, delivery_mode: :fast) }
      end
      expect(change).to eq(2)
    end
  end

  describe ".publish before start" do
    it "returns nil and counts the event as rejected" do
      rejected = stat_change(:rejected, :not_started) do
        expect(described_class.publish("a.b", {}, namespace:)).to be_nil
      end
      expect(rejected).to eq(1)
    end

    it "still validates its input" do
      expect { described_class.publish("nodot", {}, namespace:) }
        .to raise_error(ArgumentError)
    end
  end

  describe ".flush" do
    it "returns once every subscriber has handled what was published" do
      described_class.start
      subscriber = recording_subscriber("a.#") { sleep 0.01 }
      5.times do |i|
        described_class.publish("a.b", { i: }, namespace:, delivery_mode: :fast)
      end
      expect(described_class.flush(timeout: 5)).to be(true)
      expect(subscriber.received.map { |e| e[:payload][:i] }).to eq([0, 1, 2, 3, 4])
    end

    it "returns false when the timeout passes first" do
      described_class.start
      recording_subscriber("a.b") { sleep 0.5 }
      described_class.publish("a.b", {}, namespace:, delivery_mode: :fast)
      expect(described_class.flush(timeout: 0.05)).to be(false)
    end

    it "refuses to run inside a subscriber, which would wait for itself" do
      described_class.start
      errors = []
      recording_subscriber("a.b") do
        TaskerEvents.flush
      rescue TaskerEvents::Error => e
        errors << e
      end
      described_class.publish("a.b", {}, namespace:, delivery_mode: :fast)
      described_class.flush
      expect(errors.first&.message).to include("would wait for its own delivery")
    end
  end

  describe ".shutdown" do
    it "delivers what was queued, then stops; a second call is harmless" do
      described_class.start
      # Slow enough that all three are still queued when shutdown begins.
      subscriber = recording_subscriber("a.b") { sleep 0.02 }
      3.times { described_class.publish("a.b", {}, namespace:, delivery_mode: :fast) }
      expect(described_class.shutdown).to include(drained: 3, dropped: 0)
      expect(subscriber.received.size).to eq(3)
      expect(described_class.shutdown).to include(drained: 0, dropped: 0)
      expect(described_class).not_to be_started
    end

    it "leaves the counters adding up" do
      described_class.start
      recording_subscriber("a.b")
      10.times { described_class.publish("a.b", {}, namespace:, delivery_mode: :fast) }
      described_class.shutdown
      stats = described_class.stats
      %i[durable rust_subscribers ruby_subscribers].each do |path|
        counts = stats[path]
        expect(counts[:queued]).to eq(0)
        expect(counts[:accepted]).to eq(counts[:delivered] + counts[:dropped].values.sum)
      end
    end

    it "can be started again afterwards, with subscribers still attached" do
      described_class.start
      subscriber = recording_subscriber("a.b")
      described_class.shutdown
      described_class.start
      described_class.publish("a.b", {}, namespace:, delivery_mode: :fast)
      described_class.flush
      expect(subscriber.received.size).to eq(1)
    end

    # A pending interrupt that raises nothing (the new drain thread asking for the GVL) once
    # made the native shutdown skip its work, so the drain queue was never closed and the drain
    # thread outlived shutdown's wait. It is a race: a thousand rounds caught it about one run
    # in three.
    it "ends the drain thread every time" do
      survivors = Array.new(1000) do
        described_class.start
        thread = described_class.event_system.drain_thread.thread
        described_class.shutdown
        thread if thread.alive?
      end
      expect(survivors.compact).to be_empty
    end
  end

  it "is also reachable as TaskerCore::DomainEvents" do
    expect(TaskerCore::DomainEvents).to equal(described_class)
    expect(TaskerCore::DomainEvents::BaseSubscriber).to equal(TaskerEvents::BaseSubscriber)
  end
end
