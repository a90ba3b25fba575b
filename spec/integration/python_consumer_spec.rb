# frozen_string_literal: true

require "spec_helper"
require "fileutils"
require "json"
require "logger"
require "open3"
require "pg"
require "securerandom"
require "time"
require "tasker_events"

# A consumer nobody here wrote: the PyPI `pgmq` client, run by spec/fixtures/python_consumer.py.
module PythonConsumer
  NAMESPACE = "pyconsumer"
  QUEUE = "pyconsumer_domain_events"
  SCRIPT = File.expand_path("../fixtures/python_consumer.py", __dir__)
  ENVELOPE_KEYS = %w[
    event_id event_name event_version delivery_mode payload metadata execution_result
  ].freeze
  UUID = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/

  # Raised when the venv cannot be built or the consumer fails; carries the tool's output.
  class Failure < StandardError; end

  # A venv in tmp/pyenv with pgmq, built on first use and then reused. A marker file records
  # that pip finished, so a half-built venv is never trusted.
  module Venv
    REQUIREMENT = "pgmq>=1.1,<1.2"
    DIR = File.expand_path("../../tmp/pyenv", __dir__)
    PYTHON = File.join(DIR, "bin", "python")
    MARKER = File.join(DIR, ".tasker-events-ready")

    # @return [String] the venv's python, with pgmq importable
    def self.python
      build unless File.exist?(MARKER) && File.read(MARKER) == REQUIREMENT
      PYTHON
    end

    def self.build
      FileUtils.rm_rf(DIR)
      run!("could not create a Python venv (on Debian: apt-get install python3-venv)",
           ENV.fetch("PYTHON", "python3"), "-m", "venv", DIR)
      run!("could not install #{REQUIREMENT} from PyPI; this spec needs PyPI to be reachable",
           PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--retries", "2", "--timeout", "30", REQUIREMENT)
      File.write(MARKER, REQUIREMENT)
    end

    def self.run!(failure, *command)
      output, status = Open3.capture2e(*command)
      raise Failure, "#{failure}\n$ #{command.join(" ")}\n#{output}" unless status.success?
    end
  end

  # Publishes one durable event.
  # @return [Hash] what a consumer should find, with keys as JSON gives them back
  def self.publish(name, payload, **options)
    id = TaskerEvents.publish(name, payload, namespace: NAMESPACE, delivery_mode: :durable,
                                             **options)
    { id:, name:, payload: as_json(payload), options: as_json(options) }
  end

  def self.as_json(value) = JSON.parse(JSON.generate(value))

  # The metadata a consumer should find for an event published with these options.
  def self.expected_metadata(options)
    standard = {
      "namespace" => NAMESPACE,
      "correlation_id" => options["correlation_id"] || options["task_uuid"],
      "task_uuid" => options["task_uuid"],
      "step_name" => options["step_name"]
    }
    standard.compact.merge(options.fetch("metadata", {}))
  end

  # Messages left over from an earlier run against the same cluster would be read as ours.
  def self.purge_queue(db)
    return if db.exec_params("SELECT to_regclass($1)", ["pgmq.q_#{QUEUE}"]).getvalue(0, 0).nil?

    db.exec_params("SELECT pgmq.purge_queue($1)", [QUEUE])
  end

  # @return [Array<Hash>] one record per message: msg_id, read_ct, message, headers
  def self.consume(url)
    stdout, stderr, status = Open3.capture3(Venv.python, SCRIPT, url, QUEUE)
    raise Failure, "python consumer failed (#{status}):\n#{stderr}" unless status.success?

    stdout.lines.map { |line| JSON.parse(line) }
  end
end

RSpec.describe "Durable events read by the PyPI pgmq client", :integration do
  before(:all) do
    # Built first: when PyPI is unreachable nothing else is worth doing.
    PythonConsumer::Venv.python
    url = PrivatePostgres.url
    @db = PG.connect(url)
    TaskerEvents.start(database_url: url, install_pgmq: true,
                       logger: Logger.new($stderr, level: Logger::WARN))
    PythonConsumer.purge_queue(@db)

    @published = [
      PythonConsumer.publish("payment.processed",
                             { transaction_id: "TXN-1", amount: 99.99, currency: "EUR" },
                             correlation_id: SecureRandom.uuid, metadata: { region: "eu" }),
      PythonConsumer.publish("payment.refunded",
                             { transaction_id: "TXN-1", amount: 10.5, reason: "damaged item" },
                             correlation_id: SecureRandom.uuid,
                             metadata: { region: "us", attempt: 2 }),
      PythonConsumer.publish("invoice.issued",
                             { invoice_id: "INV-7", lines: [{ sku: "A-1", quantity: 2 }] },
                             task_uuid: SecureRandom.uuid, step_name: "issue_invoice",
                             execution_result: { success: true, total: 89.49 })
    ]
    raise "TaskerEvents.flush timed out" unless TaskerEvents.flush(timeout: 10)

    @consumed = PythonConsumer.consume(url)
  end

  after(:all) { @db&.close }

  let(:by_id) { @consumed.to_h { |record| [record.dig("message", "event_id"), record] } }

  it "reads every published event, each for the first time" do
    expect(@published.map { |event| event[:id] }).to all(match(PythonConsumer::UUID))
    expect(by_id.keys).to match_array(@published.map { |event| event[:id] })
    expect(@consumed.map { |record| record["read_ct"] }).to all(eq(1))
  end

  it "sees the names and payloads that were published" do
    @published.each do |event|
      message = by_id.fetch(event[:id])["message"]
      expect(message).to include("event_name" => event[:name], "payload" => event[:payload])
    end
  end

  it "finds exactly the documented envelope" do
    @published.each do |event|
      message = by_id.fetch(event[:id])["message"]
      expect(message.keys).to match_array(PythonConsumer::ENVELOPE_KEYS)
      expect(message).to include("delivery_mode" => "durable",
                                 "execution_result" => event[:options]["execution_result"])
      expect(message["event_version"]).to be_a(String).and(satisfy { |v| !v.empty? })
    end
  end

  it "finds the metadata that was published, plus who fired the event and when" do
    @published.each do |event|
      metadata = by_id.fetch(event[:id]).dig("message", "metadata")
      expect(metadata).to include(PythonConsumer.expected_metadata(event[:options]))
      expect(metadata["fired_by"]).to be_a(String)
      expect(Time.iso8601(metadata["fired_at"])).to be_within(300).of(Time.now)
    end
  end

  it "finds headers that repeat the event id, event name and correlation id" do
    @consumed.each do |record|
      message = record["message"]
      expect(record["headers"]).to eq(
        "event_id" => message["event_id"],
        "event_name" => message["event_name"],
        "correlation_id" => message.dig("metadata", "correlation_id")
      )
    end
  end

  it "leaves the queue empty once the consumer deleted what it read" do
    count = @db.exec("SELECT count(*) FROM pgmq.q_#{PythonConsumer::QUEUE}").getvalue(0, 0).to_i
    expect(count).to eq(0)
  end
end
