# frozen_string_literal: true

require "spec_helper"
require "json"
require "logger"
require "pg"
require "time"

# The example consumers of examples/consumers, each run as its own process against events
# published through TaskerEvents: what a user who copies one of them gets. Both take the same
# flags and print the same records, so one set of examples checks both.
RSpec.shared_examples "a consumer of durable domain events" do |language|
  let(:language) { language }
  let(:database_url) { PrivatePostgres.url }
  let(:db) { PG.connect(database_url) }
  let(:namespace) { unique_namespace(language.to_s) }
  let(:queue) { "#{namespace}_domain_events" }

  before do
    TaskerEvents.start(database_url:, install_pgmq: true,
                       logger: Logger.new($stderr, level: Logger::WARN))
  end
  after { db.close }

  # Publishes one event and waits until it is in PGMQ.
  # @return [Hash] what a consumer should find, with keys as JSON gives them back
  def publish(name, payload, delivery_mode: :durable, **options)
    id = TaskerEvents.publish(name, payload, namespace:, delivery_mode:, **options)
    raise "TaskerEvents.flush timed out" unless TaskerEvents.flush(timeout: 10)

    options = JSON.parse(JSON.generate(options))
    { id:, name:, delivery_mode: delivery_mode.to_s, payload: JSON.parse(JSON.generate(payload)),
      correlation_id: options["correlation_id"] || options["task_uuid"], options: }
  end

  def publish_payments(count)
    Array.new(count) { |i| publish("payment.processed", { seq: i })[:id] }
  end

  # Runs the consumer on this example's namespace, in --json mode unless told otherwise.
  def consume(*flags, json: true)
    ExternalConsumers.run(language, namespace, *(json ? ["--json"] : []), *flags,
                          database_url:)
  end

  # @return [Array<String>] the event ids in the queue (q) or its archive (a), by msg_id
  def ids_in(table)
    db.exec("SELECT message->>'event_id' FROM pgmq.#{table}_#{queue} ORDER BY msg_id")
      .column_values(0)
  end

  def send_raw(message, headers = nil)
    db.exec_params("SELECT pgmq.send($1, $2::jsonb, $3::jsonb)",
                   [queue, JSON.generate(message), headers && JSON.generate(headers)])
      .getvalue(0, 0).to_i
  end

  it "reads every durable and broadcast event once, as documented, and deletes it",
     :aggregate_failures do
    published = [
      publish("payment.processed", { transaction_id: "TXN-1", amount: 99.99, currency: "EUR" },
              correlation_id: SecureRandom.uuid, metadata: { region: "eu" }),
      publish("payment.refunded", { transaction_id: "TXN-1", amount: 10.5, reason: "damaged" },
              delivery_mode: :broadcast, correlation_id: SecureRandom.uuid,
              metadata: { region: "us", attempt: 2 }),
      publish("invoice.issued", { invoice_id: "INV-7", lines: [{ sku: "A-1", quantity: 2 }] },
              task_uuid: SecureRandom.uuid, step_name: "issue_invoice",
              execution_result: { success: true, total: 89.49 })
    ]

    run = consume
    expect(run.exitstatus).to eq(0), run.stderr
    expect(run.event_ids).to eq(published.map { |event| event[:id] })
    expect(run.statuses).to all(eq("processed"))
    expect(run.records.map { |record| record["read_ct"] }).to all(eq(1))
    published.zip(run.records) do |event, record|
      message = record["message"]
      expect(message.keys).to match_array(%w[event_id event_name event_version delivery_mode
                                             payload metadata execution_result])
      expect(message).to include(
        "event_name" => event[:name], "event_version" => "1.0",
        "delivery_mode" => event[:delivery_mode], "payload" => event[:payload],
        "execution_result" => event[:options]["execution_result"]
      )
      expect(message["metadata"]).to include(
        { "namespace" => namespace, "correlation_id" => event[:correlation_id],
          "task_uuid" => event[:options]["task_uuid"], "step_name" => event[:options]["step_name"],
          "fired_by" => "default" }.merge(event[:options].fetch("metadata", {}))
      )
      expect(Time.iso8601(message["metadata"]["fired_at"])).to be_within(300).of(Time.now)
      expect(record["headers"]).to eq("event_id" => event[:id], "event_name" => event[:name],
                                      "correlation_id" => event[:correlation_id])
    end
    expect(ids_in(:q)).to be_empty
    expect(ids_in(:a)).to be_empty
    expect(run.stderr).to include("#{queue} drained after 3 messages: 3 processed, " \
                                  "0 duplicate, 0 rejected; 3 deleted, 0 archived")
  end

  it "prints one line per event without --json" do
    event = publish("payment.processed", { amount: 1 }, correlation_id: SecureRandom.uuid)

    run = consume(json: false)
    expect(run.exitstatus).to eq(0), run.stderr
    expect(run.stdout.lines.size).to eq(1)
    status, msg_id, read_ct, *identifiers = run.stdout.split
    expect([status, read_ct]).to eq(%w[processed read_ct=1])
    expect(msg_id).to match(/\Amsg_id=\d+\z/)
    expect(identifiers).to eq(["event_id=#{event[:id]}", "event_name=payment.processed",
                               "correlation_id=#{event[:correlation_id]}"])
  end

  it "moves what it handled to the archive with --archive", :aggregate_failures do
    ids = [publish("order.placed", { seq: 1 }),
           publish("order.placed", { seq: 2 }, delivery_mode: :broadcast)].map { |e| e[:id] }

    run = consume("--archive")
    expect(run.exitstatus).to eq(0), run.stderr
    expect(run.event_ids).to eq(ids)
    expect(ids_in(:q)).to be_empty
    expect(ids_in(:a)).to eq(ids)
    expect(run.stderr).to include("0 deleted, 2 archived")
  end

  it "handles a duplicated message once, by event_id, and acknowledges both copies",
     :aggregate_failures do
    id = publish("payment.processed", { amount: 1 })[:id]
    row = db.exec("SELECT message, headers FROM pgmq.q_#{queue}").first
    send_raw(JSON.parse(row["message"]), JSON.parse(row["headers"]))

    # One message per batch: the duplicate is recognized across batches, not only within one.
    run = consume("--batch-size", "1")
    expect(run.exitstatus).to eq(0), run.stderr
    expect(run.statuses).to eq(%w[processed duplicate])
    expect(run.event_ids).to eq([id, id])
    expect(run.records.map { |record| record["msg_id"] }.uniq.size).to eq(2)
    expect(ids_in(:q)).to be_empty
  end

  it "gets back, once their visibility timeout ends, the messages a dead consumer held",
     :aggregate_failures do
    ids = publish_payments(3)

    # Dies after handling two of the three messages of its batch, acknowledging none.
    crashed = consume("--vt", "3", "--crash-after", "2")
    expect(crashed.exitstatus).to eq(4), crashed.stderr
    expect(crashed.event_ids).to eq(ids.first(2))
    hidden = db.exec("SELECT count(*) FROM pgmq.q_#{queue} WHERE vt > now()").getvalue(0, 0)
    expect(hidden.to_i).to eq(3)

    # Handled again: deduplication by event_id lives as long as the process that does it.
    again = consume("--wait", "10", "--max-messages", "3")
    expect(again.exitstatus).to eq(0), again.stderr
    expect(again.event_ids).to eq(ids)
    expect(again.statuses).to all(eq("processed"))
    expect(again.records.map { |record| record["read_ct"] }).to all(eq(2))
    expect(ids_in(:q)).to be_empty
  end

  it "leaves alone a message another reader holds until its visibility timeout ends",
     :aggregate_failures do
    ids = publish_payments(2)
    held = db.exec_params("SELECT msg_id FROM pgmq.read($1, 30, 1)", [queue]).getvalue(0, 0)

    run = consume
    expect(run.event_ids).to eq([ids[1]])
    expect(ids_in(:q)).to eq([ids[0]])

    db.exec_params("SELECT pgmq.set_vt($1::text, $2::bigint, 0)", [queue, held])
    again = consume
    expect(again.event_ids).to eq([ids[0]])
    expect(again.records.first["read_ct"]).to eq(2)
    expect(ids_in(:q)).to be_empty
  end

  it "archives what is not a domain event, says why, and exits 1", :aggregate_failures do
    id = publish("payment.processed", { amount: 1 })[:id]
    not_an_event = send_raw({ "hello" => "world" })
    event = db.exec_params("SELECT message FROM pgmq.q_#{queue} WHERE message->>'event_id' = $1",
                           [id]).getvalue(0, 0)
    fast = send_raw(JSON.parse(event).merge("event_id" => SecureRandom.uuid,
                                            "delivery_mode" => "fast"))

    run = consume
    expect(run.exitstatus).to eq(1), run.stderr
    expect(run.statuses).to eq(%w[processed rejected rejected])
    expect(run.records.map { |record| record["problem"] })
      .to eq([nil, "missing event_id", 'delivery_mode is not "durable" or "broadcast": "fast"'])
    expect(ids_in(:q)).to be_empty
    archived = db.exec("SELECT msg_id FROM pgmq.a_#{queue} ORDER BY msg_id").column_values(0)
    expect(archived.map(&:to_i)).to eq([not_an_event, fast])
    expect(run.event_ids.first).to eq(id)
  end

  it "stops after --max-messages and leaves the rest queued" do
    ids = publish_payments(3)

    run = consume("--max-messages", "2")
    expect(run.exitstatus).to eq(0), run.stderr
    expect(run.event_ids).to eq(ids.first(2))
    expect(ids_in(:q)).to eq([ids[2]])
    expect(run.stderr).to include("stopped at --max-messages")
  end

  it "waits for new events with --wait, until --timeout", :aggregate_failures do
    first = publish("payment.processed", { seq: 1 })[:id]
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    consumer = Thread.new { consume("--wait", "30", "--timeout", "4") }
    sleep 1.5
    second = publish("payment.processed", { seq: 2 })[:id]

    run = consumer.value
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    expect(run.exitstatus).to eq(0), run.stderr
    expect(run.event_ids).to eq([first, second])
    # It waited past the second event and stopped at --timeout, long before the 30 s --wait;
    # the upper bound leaves room for a slow interpreter start on a loaded machine.
    expect(elapsed).to be_between(3.5, 25)
  end

  it "exits 3 and names the queue when nothing was ever published in the namespace" do
    run = consume
    expect(run.exitstatus).to eq(3)
    expect(run.stdout).to be_empty
    expect(run.stderr).to include("queue #{queue} does not exist")
  end

  it "exits 2 for a bad flag and documents every flag in --help", :aggregate_failures do
    expect(consume("--vt", "0").exitstatus).to eq(2)
    help = consume("--help", json: false)
    expect(help.exitstatus).to eq(0)
    %w[--database-url --batch-size --vt --archive --wait --max-messages --timeout --json
       --crash-after].each { |flag| expect(help.stdout).to include(flag) }
  end
end

RSpec.describe "examples/consumers/python_consumer.py (PyPI pgmq)", :integration do
  it_behaves_like "a consumer of durable domain events", :python
end

RSpec.describe "examples/consumers/ruby_consumer.rb (pg and plain SQL)", :integration do
  it_behaves_like "a consumer of durable domain events", :ruby
end
