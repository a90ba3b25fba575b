# frozen_string_literal: true

require "spec_helper"
require "pg"
require "json"

# Durable and broadcast delivery against a real PostgreSQL with PGMQ installed as plain SQL.
RSpec.describe "durable delivery", :integration do
  let(:namespace) { unique_namespace("durable") }
  let(:queue_table) { "pgmq.q_#{namespace}_domain_events" }
  let(:database_url) { PrivatePostgres.url }
  let(:connection) { PG.connect(database_url) }

  # Room for a burst of 1,500 events published faster than one write round trip.
  before do
    TaskerEvents.start(database_url:, install_pgmq: true, command_buffer_size: 4096)
  end
  after { connection.close }

  def rows
    sql = "SELECT msg_id, message, headers FROM #{queue_table} ORDER BY msg_id"
    connection.exec(sql).map do |row|
      { message: JSON.parse(row["message"]), headers: JSON.parse(row["headers"]) }
    end
  end

  def queue_exists?
    connection.exec_params("SELECT 1 FROM pgmq.meta WHERE queue_name = $1",
                           ["#{namespace}_domain_events"]).ntuples.positive?
  end

  it "writes exactly one row with the documented message and headers" do
    task_uuid = SecureRandom.uuid
    correlation_id = SecureRandom.uuid
    id = TaskerEvents.publish(
      "payment.processed", { transaction_id: "TXN-1", amount: 99.99 },
      namespace:, task_uuid:, step_name: "process_payment",
      correlation_id:, metadata: { region: "eu" },
      execution_result: { success: true }
    )
    expect(TaskerEvents.flush(timeout: 10)).to be(true)

    expect(rows.size).to eq(1)
    message = rows[0][:message]
    expect(message.keys).to contain_exactly("event_id", "event_name", "event_version",
                                            "delivery_mode", "payload", "metadata",
                                            "execution_result")
    expect(message).to include("event_id" => id, "event_name" => "payment.processed",
                               "event_version" => "1.0", "delivery_mode" => "durable",
                               "payload" => { "transaction_id" => "TXN-1", "amount" => 99.99 },
                               "execution_result" => { "success" => true })
    expect(message["metadata"]).to include(
      "task_uuid" => task_uuid, "step_uuid" => nil, "step_name" => "process_payment",
      "namespace" => namespace, "correlation_id" => correlation_id, "fired_by" => "default",
      "region" => "eu"
    )
    expect(Time.iso8601(message["metadata"]["fired_at"])).to be_within(60).of(Time.now)
    expect(rows[0][:headers]).to eq("event_id" => id, "event_name" => "payment.processed",
                                    "correlation_id" => correlation_id)
  end

  it "leaves PGMQ untouched for fast events" do
    subscriber = recording_subscriber("payment.*")
    TaskerEvents.publish("payment.processed", {}, namespace:, delivery_mode: :fast)
    TaskerEvents.flush(timeout: 10)
    expect(subscriber.received.size).to eq(1)
    expect(queue_exists?).to be(false)
  end

  it "delivers a broadcast event to both paths with one event id" do
    subscriber = recording_subscriber("payment.*")
    id = TaskerEvents.publish("payment.processed", { amount: 1 }, namespace:,
                                                                  delivery_mode: :broadcast)
    TaskerEvents.flush(timeout: 10)
    expect(subscriber.received.map { |e| e[:event_id] }).to eq([id])
    expect(rows.map { |r| r[:message]["event_id"] }).to eq([id])
    expect(rows[0][:message]["delivery_mode"]).to eq("broadcast")
  end

  it "writes many events in publish order" do
    ids = Array.new(1500) do |i|
      TaskerEvents.publish("order.placed", { seq: i }, namespace:)
    end
    expect(TaskerEvents.flush(timeout: 30)).to be(true)
    expect(rows.map { |r| r[:message]["event_id"] }).to eq(ids)
  end
end

RSpec.describe "durable delivery with PostgreSQL unreachable", :integration do
  let(:namespace) { unique_namespace("down") }

  it "returns at once and keeps the event for a retry until shutdown" do
    TaskerEvents.start(database_url: "postgres://postgres@127.0.0.1:1/none",
                       connect_timeout_ms: 3000, shutdown_drain_timeout_ms: 300,
                       logger: Logger.new(File::NULL))
    before = TaskerEvents.stats[:durable]
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    id = TaskerEvents.publish("payment.processed", {}, namespace:)
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started

    expect(id).to be_a(String)
    # Far below the connect timeout: publish hands the event over and never waits for it.
    expect(elapsed).to be < 1.5
    expect(TaskerEvents.flush(timeout: 0.5)).to be(false)
    expect(TaskerEvents.stats[:durable][:queued] - before[:queued]).to eq(1)

    # Shutdown cannot write it either, and says so.
    expect(TaskerEvents.shutdown[:dropped]).to eq(1)
    after = TaskerEvents.stats[:durable]
    expect(after[:dropped][:shutting_down] - before[:dropped][:shutting_down]).to eq(1)
    expect(after[:dropped][:database_error]).to eq(before[:dropped][:database_error])
  end
end
