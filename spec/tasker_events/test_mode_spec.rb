# frozen_string_literal: true

require "spec_helper"

# TaskerEvents.start(test_mode: true): durable events captured in the core instead of PGMQ.
RSpec.describe TaskerEvents::TestMode do
  let(:namespace) { unique_namespace("capture") }
  # Nothing listens on port 1: had test mode tried it, writes would fail as database_error.
  let(:unreachable) { "postgres://tasker:hunter2@127.0.0.1:1/nowhere" }

  def start_test_mode(**settings)
    TaskerEvents.start(test_mode: true, database_url: unreachable, install_pgmq: true,
                       connect_timeout_ms: 50, **settings)
    TaskerEvents.clear_captured
  end

  def publish(name, payload = {}, mode: :durable, **options)
    TaskerEvents.publish(name, payload, namespace:, delivery_mode: mode, **options)
  end

  describe "durable events" do
    before { start_test_mode }

    it "are captured as PGMQ messages and counted as delivered, without connecting" do
      delivered = stat_change(:durable, :delivered) do
        failed = stat_change(:durable, :dropped, :database_error) do
          publish("payment.processed", { amount: 99.99 })
          publish("payment.settled", { amount: 99.99 }, mode: :broadcast)
          expect(TaskerEvents.flush(timeout: 10)).to be(true)
        end
        expect(failed).to eq(0)
      end
      expect(delivered).to eq(2)

      messages = TaskerEvents.captured_messages(namespace:)
      expect(messages.map { |m| m.slice(:queue_name, :msg_id, :read_ct) })
        .to eq([{ queue_name: "#{namespace}_domain_events", msg_id: 1, read_ct: 0 },
                { queue_name: "#{namespace}_domain_events", msg_id: 2, read_ct: 0 }])
      expect(messages.map { |m| m[:message][:event_name] })
        .to eq(%w[payment.processed payment.settled])
    end

    it "carry the body and headers the PGMQ publisher writes, frozen" do
      subscriber = recording_subscriber("payment.#")
      id = publish("payment.processed", { amount: 99.99 }, mode: :broadcast,
                                                           metadata: { region: "eu" })
      TaskerEvents.flush

      message = TaskerEvents.captured_messages(namespace:).fetch(0)
      expect(message.keys)
        .to contain_exactly(:queue_name, :msg_id, :read_ct, :enqueued_at, :vt, :message, :headers)
      expect(message[:message]).to eq(subscriber.received.fetch(0))
      expect(message[:message][:event_id]).to eq(id)
      expect(message[:headers]).to eq(event_id: id, event_name: "payment.processed",
                                      correlation_id: message[:message][:metadata][:correlation_id])
      expect(Time.iso8601(message[:enqueued_at])).to be_within(60).of(Time.now)
      expect(message[:vt]).to eq(message[:enqueued_at])
      expect(message).to be_frozen
      expect(message[:message][:payload]).to be_frozen
    end
  end

  describe "in-process events" do
    before { start_test_mode }

    it "still reach subscribers, and never the captured messages" do
      subscriber = recording_subscriber("order.*")
      publish("order.viewed", { page: 1 }, mode: :fast)
      TaskerEvents.flush
      expect(subscriber.received.map { |e| e[:event_name] }).to eq(["order.viewed"])
      expect(TaskerEvents.captured_messages).to be_empty
    end

    it "are logged with every other event, in routing order, per delivery mode" do
      ids = [publish("order.placed"), publish("order.viewed", mode: :fast),
             publish("order.paid", mode: :broadcast)]
      TaskerEvents.flush
      expect(TaskerEvents.captured_events.map { |e| e[:event_id] }).to eq(ids)
      expect(TaskerEvents.captured_events(delivery_mode: :fast).map { |e| e[:event_id] })
        .to eq([ids[1]])
      expect(TaskerEvents.captured_events(delivery_mode: "broadcast").map { |e| e[:event_id] })
        .to eq([ids[2]])
    end

    it "are logged without a subscriber of the gem's own, so the counters are the user's" do
      registered = TaskerEvents::SubscriberRegistry.instance.count
      change = stat_change(:ruby_subscribers, :accepted) do
        publish("order.viewed", mode: :fast)
        TaskerEvents.flush
      end
      expect(change).to eq(0)
      expect(TaskerEvents::SubscriberRegistry.instance.count).to eq(registered)
      expect(TaskerEvents.captured_events.size).to eq(1)
    end
  end

  it "runs declared events through conditions, publishers and schemas" do
    require_relative "../../examples/publishers/payment_event_publisher"
    registry = TaskerEvents::PublisherRegistry.instance
    registry.register(DomainEvents::Publishers::PaymentEventPublisher.new)
    start_test_mode(templates: [DeclaredEventHelpers::EXAMPLE_TEMPLATE])
    context = { step_name: "process_payment", namespace: "payments",
                task_name: "credit_card_payment", task_version: "1.0.0",
                step_uuid: SecureRandom.uuid, attempt: 1 }

    dispatch_and_flush(context, { success: true, result: { transaction_id: "TXN-1", amount: 5 } })
    skipped = stat_change(:declared_events, :schema_violation) do
      dispatch_and_flush(context.merge(step_uuid: SecureRandom.uuid),
                         { success: true, result: { transaction_id: "TXN-2", amount: "five" } })
    end

    messages = TaskerEvents.captured_messages(namespace: "payments")
    expect(messages.map { |m| m[:message][:payload].slice(:transaction_id, :amount, :publisher) })
      .to eq([{ transaction_id: "TXN-1", amount: 5,
                publisher: "DomainEvents::Publishers::PaymentEventPublisher" }])
    expect(skipped).to eq(1)
  ensure
    registry.reset!
  end

  describe "the capture" do
    it "survives shutdown and a new start until cleared" do
      start_test_mode
      publish("order.placed")
      TaskerEvents.shutdown
      expect(TaskerEvents.captured_messages.size).to eq(1)
      expect(TaskerEvents.captured_events.size).to eq(1)

      TaskerEvents.start(test_mode: true)
      expect(TaskerEvents.captured_messages.size).to eq(1)
      expect(TaskerEvents.clear_captured).to be_nil
      expect(TaskerEvents.captured_messages).to be_empty
      expect(TaskerEvents.captured_events).to be_empty
    end

    it "keeps the latest capture_limit messages, discarding and counting the oldest" do
      start_test_mode(command_buffer_size: 20_000, log_dropped_events: false)
      limit = TaskerEvents.capture_limit
      expect(limit).to eq(10_000)
      delivered = stat_change(:durable, :delivered) do
        (limit + 1).times { |i| publish("order.placed", { i: }) }
        TaskerEvents.flush(timeout: 30)
      end

      messages = TaskerEvents.captured_messages
      expect(delivered).to eq(limit + 1)
      expect(messages.size).to eq(limit)
      expect(messages.first[:message][:payload]).to eq(i: 1)
      expect(TaskerEvents.capture_discarded).to eq(messages: 1, events: 1)
    end

    it "is not written outside test mode" do
      TaskerEvents.start
      TaskerEvents.clear_captured
      publish("order.viewed", mode: :fast)
      TaskerEvents.flush
      expect(TaskerEvents.captured_events).to be_empty
    end
  end

  describe ".test_mode?" do
    it "is true only while a system started with test_mode: true runs" do
      expect(TaskerEvents.test_mode?).to be(false)
      TaskerEvents.start
      expect(TaskerEvents.test_mode?).to be(false)
      TaskerEvents.shutdown
      TaskerEvents.start(test_mode: true)
      expect(TaskerEvents.test_mode?).to be(true)
      TaskerEvents.shutdown
      expect(TaskerEvents.test_mode?).to be(false)
    end
  end

  it "refuses a test_mode that is not true or false" do
    expect { TaskerEvents.start(test_mode: "yes") }
      .to raise_error(TaskerEvents::ConfigError, 'test_mode must be true or false, got "yes"')
  end
end
