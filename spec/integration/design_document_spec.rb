# frozen_string_literal: true

require "spec_helper"
require "json"
require "pg"
require_relative "../../examples/publishers/payment_event_publisher"
require_relative "../../examples/subscribers/logging_subscriber"
require_relative "../../examples/subscribers/metrics_subscriber"

# The payments example of the design document, end to end: the example template, publisher
# and subscribers in examples/, a real PostgreSQL with PGMQ, and completions of the
# process_payment step as a worker would dispatch them.
RSpec.describe "the design document's payments example", :integration do
  let(:publisher_name) { "DomainEvents::Publishers::PaymentEventPublisher" }
  let(:metrics) { DomainEvents::Subscribers::MetricsSubscriber }
  let(:connection) { PG.connect(PrivatePostgres.url) }
  let(:log) { StringIO.new }
  let(:task_uuid) { SecureRandom.uuid }
  let(:step_uuid) { SecureRandom.uuid }
  let(:correlation_id) { SecureRandom.uuid }
  # Everything the in-process subscribers were given, to compare with the PGMQ rows.
  let(:received) { recording_subscriber("payment.#").received }

  before do
    TaskerEvents::PublisherRegistry.instance.register(
      DomainEvents::Publishers::PaymentEventPublisher.new
    )
    TaskerEvents::SubscriberRegistry.instance
                                    .register(DomainEvents::Subscribers::LoggingSubscriber)
                                    .register(DomainEvents::Subscribers::MetricsSubscriber)
                                    .start_all!
    metrics.reset_counters!
    # Subscribes the recorder now: only events published after that reach it.
    received
  end

  after do
    TaskerEvents::PublisherRegistry.instance.reset!
    TaskerEvents.logger = nil
    connection.close
  end

  def start(template)
    # Only the messages, so that the logging subscriber's lines can be compared whole.
    logger = Logger.new(log, level: Logger::INFO, formatter: ->(*, message) { "#{message}\n" })
    TaskerEvents.start(templates: [template], database_url: PrivatePostgres.url,
                       install_pgmq: true, strict_publishers: true, logger:)
  end

  def context(namespace, attempt: 1)
    TaskerEvents::StepContext.new(
      task_uuid:, step_uuid:, step_name: "process_payment", namespace:,
      task_name: "credit_card_payment", task_version: "1.0.0", correlation_id:, attempt:
    )
  end

  def queue_rows(namespace, where = "TRUE", *params)
    return [] unless queue_exists?(namespace)

    sql = "SELECT message, headers FROM pgmq.q_#{namespace}_domain_events WHERE #{where} " \
          "ORDER BY msg_id"
    connection.exec_params(sql, params).map do |row|
      { message: JSON.parse(row["message"]), headers: JSON.parse(row["headers"]) }
    end
  end

  def queue_exists?(namespace)
    connection.exec_params("SELECT 1 FROM pgmq.meta WHERE queue_name = $1",
                           ["#{namespace}_domain_events"]).ntuples.positive?
  end

  # The event as a PGMQ consumer reads it: string keys all the way down.
  def as_json(event)
    JSON.parse(JSON.generate(event))
  end

  def logged_by_logging_subscriber(event_name, namespace)
    ["[LoggingSubscriber] Event: #{event_name}", "  Task: #{task_uuid}",
     "  Step: process_payment", "  Namespace: #{namespace}", "  Correlation: #{correlation_id}"]
      .map { |line| "#{line}\n" }.join
  end

  def standard_metadata(namespace, fired_by)
    { task_uuid:, step_uuid:, step_name: "process_payment", namespace:, correlation_id:,
      fired_by: }
  end

  let(:success) do
    { success: true, retryable: false,
      result: { transaction_id: "TXN-4242", amount: 149.99, currency: "EUR",
                processed_at: "2026-12-03T10:00:00Z" },
      metadata: { execution_time_ms: 842, payment_provider: "stripe" } }
  end
  let(:retryable_failure) do
    { success: false, retryable: true, result: { error: "gateway timeout" },
      metadata: { error_code: "gateway_timeout", execution_time_ms: 30_000,
                  payment_provider: "stripe" } }
  end
  let(:permanent_failure) do
    { success: false, retryable: false, result: { transaction_id: "TXN-4243" },
      metadata: { error_code: "card_declined", error_message: "Card declined by issuer",
                  execution_time_ms: 120, payment_provider: "stripe" } }
  end

  describe "with the example template in a namespace of its own" do
    let(:namespace) { unique_namespace("payments") }

    # The example template, with only its namespace changed, so that no other spec's rows
    # share the queue.
    let(:template) do
      text = File.read(DeclaredEventHelpers::EXAMPLE_TEMPLATE)
      copy = text.sub(/^namespace_name: payments$/, "namespace_name: #{namespace}")
      raise "the example template no longer names namespace payments" if copy == text

      write_declared_template(copy, "credit_card_payment/1.0.0.yaml")
    end

    before { start(template) }

    it "publishes payment.processed to PGMQ and the subscribers for a success" do
      dispatch_and_flush(context(namespace), success)

      expect(received.size).to eq(1)
      event = received[0]
      expect(event).to include(event_name: "payment.processed", event_version: "1.0",
                               delivery_mode: "broadcast", execution_result: success)
      expect(event[:payload]).to eq(
        transaction_id: "TXN-4242", amount: 149.99, currency: "EUR",
        payment_method: "credit_card", processed_at: "2026-12-03T10:00:00Z",
        delivery_mode: "broadcast", publisher: publisher_name
      )
      expect(event[:metadata].except(:fired_at)).to eq(
        **standard_metadata(namespace, publisher_name),
        execution_time_ms: 842, publisher_type: "custom", publisher_name:,
        payment_provider: "stripe"
      )

      rows = queue_rows(namespace)
      expect(rows.map { |row| row[:message] }).to eq([as_json(event)])
      expect(rows[0][:headers]).to eq("event_id" => event[:event_id],
                                      "event_name" => "payment.processed",
                                      "correlation_id" => correlation_id)
    end

    it "lets the logging and metrics subscribers see a success" do
      before_dispatch = Time.now
      dispatch_and_flush(context(namespace), success)

      expect(log.string).to include(logged_by_logging_subscriber("payment.processed", namespace))
      expect([metrics.events_received, metrics.success_events, metrics.failure_events])
        .to eq([1, 1, 0])
      expect(metrics.events_by_namespace).to eq(namespace => 1)
      expect(metrics.last_event_at).to be_between(before_dispatch, Time.now)
    end

    it "publishes only payment.retry_scheduled, in-process, for a retryable failure" do
      change = stat_change(:declared_events, :condition_not_met) do
        dispatch_and_flush(context(namespace, attempt: 1), retryable_failure)
      end

      expect(received.size).to eq(1)
      event = received[0]
      expect(event).to include(event_name: "payment.retry_scheduled", delivery_mode: "fast",
                               payload: { error: "gateway timeout" },
                               execution_result: retryable_failure)
      # No publisher is named for it, so its metadata is the standard fields alone.
      expect(event[:metadata].except(:fired_at)).to eq(standard_metadata(namespace, "default"))
      expect(change).to eq(2)
      expect(queue_rows(namespace)).to eq([])

      expect(log.string)
        .to include(logged_by_logging_subscriber("payment.retry_scheduled", namespace))
      expect([metrics.events_received, metrics.success_events, metrics.failure_events])
        .to eq([1, 0, 1])
    end

    it "publishes payment.failed to PGMQ only for a permanent failure" do
      dispatch_and_flush(context(namespace), permanent_failure)

      rows = queue_rows(namespace)
      expect(rows.size).to eq(1)
      message = rows[0][:message]
      expect(message).to include("event_name" => "payment.failed", "delivery_mode" => "durable",
                                 "execution_result" => as_json(permanent_failure))
      expect(message["payload"]).to eq(
        "error_code" => "card_declined", "reason" => "Card declined by issuer",
        "transaction_id" => "TXN-4243", "attempt" => 1, "publisher" => publisher_name
      )
      metadata = standard_metadata(namespace, publisher_name).merge(
        execution_time_ms: 120, publisher_type: "custom", publisher_name:,
        payment_provider: "stripe"
      )
      expect(message["metadata"].except("fired_at")).to eq(as_json(metadata))

      # Durable events never reach in-process subscribers.
      expect(received).to eq([])
      expect(metrics.events_received).to eq(0)
      expect(log.string).not_to include("[LoggingSubscriber]")
    end

    it "treats a failure on the last allowed attempt as permanent" do
      dispatch_and_flush(context(namespace, attempt: 3), retryable_failure)

      expect(received).to eq([])
      rows = queue_rows(namespace)
      expect(rows.map { |row| row[:message]["event_name"] }).to eq(["payment.failed"])
      expect(rows[0][:message]["payload"]).to include("error_code" => "gateway_timeout",
                                                      "reason" => "gateway timeout",
                                                      "attempt" => 3)
    end

    it "skips the events the publisher finds nothing to report in" do
      no_transaction = success.merge(result: { amount: 1.0 })
      no_error_code = permanent_failure.merge(metadata: { error_message: "declined" })
      skipped = stat_change(:declared_events, :publisher_skipped) do
        dispatch_and_flush(context(namespace), no_transaction)
        dispatch_and_flush(context(namespace).to_h.merge(step_uuid: SecureRandom.uuid),
                           no_error_code)
      end

      expect(skipped).to eq(2)
      expect(received).to eq([])
      expect(queue_rows(namespace)).to eq([])
    end

    it "counts what a whole run of the step published" do
      dispatch_and_flush(context(namespace, attempt: 1), retryable_failure)
      dispatch_and_flush(context(namespace, attempt: 2), success)

      expect(received.map { |e| e[:event_name] })
        .to eq(%w[payment.retry_scheduled payment.processed])
      expect(queue_rows(namespace).map { |row| row[:message]["event_name"] })
        .to eq(["payment.processed"])
      expect([metrics.events_received, metrics.success_events, metrics.failure_events])
        .to eq([2, 1, 1])
      expect(metrics.events_by_namespace).to eq(namespace => 2)
    end
  end

  describe "with the example template as shipped" do
    # The shared payments queue may hold rows of other runs; this example's rows are the ones
    # with its correlation id, and it removes them afterwards.
    after do
      if queue_exists?("payments")
        connection.exec_params(
          "DELETE FROM pgmq.q_payments_domain_events " \
          "WHERE message->'metadata'->>'correlation_id' = $1", [correlation_id]
        )
      end
    end

    it "publishes to the payments queue" do
      start(DeclaredEventHelpers::EXAMPLE_TEMPLATE)
      dispatch_and_flush(context("payments"), success)

      rows = queue_rows("payments", "message->'metadata'->>'correlation_id' = $1", correlation_id)
      expect(rows.map { |row| row[:message] }).to eq(received.map { |event| as_json(event) })
      expect(rows.map { |row| row[:message]["event_name"] }).to eq(["payment.processed"])
      expect(metrics.events_by_namespace).to eq("payments" => 1)
    end
  end
end
